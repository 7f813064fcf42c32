package host

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives go-plugin a logger that forwards to the host's slog
// logger, keeping levels: go-plugin re-logs each line the plugin writes
// to stderr through it (a plugin's hclog JSON lines at their own level,
// anything else at debug).
func newHCLogger(log *slog.Logger) hclog.Logger {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "plugin", Output: io.Discard, Level: hclog.Trace})
	l.RegisterSink(slogSink{log})
	return l
}

type slogSink struct{ log *slog.Logger }

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	lvl := slog.LevelDebug
	if name == "plugin" {
		// go-plugin's own records ("plugin process exited"…): the
		// supervisor says what matters, once, in its own words.
		level = hclog.Debug
	}
	switch level {
	case hclog.Info:
		lvl = slog.LevelInfo
	case hclog.Warn:
		lvl = slog.LevelWarn
	case hclog.Error:
		lvl = slog.LevelError
	}
	kv := make([]any, 0, len(args)+2)
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "timestamp" {
			continue // go-plugin's copy of the plugin's time; ours is the record's
		}
		kv = append(kv, args[i], args[i+1])
	}
	s.log.Log(context.Background(), lvl, msg, append(kv, "logger", name)...)
}
