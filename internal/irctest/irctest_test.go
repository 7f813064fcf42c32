package irctest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestStartWithServices: services answer once Start returns, and an account
// registers; the times are logged (atheme starts in well under a second).
func TestStartWithServices(t *testing.T) {
	start := time.Now()
	s := Start(t, Options{Services: true})
	started := time.Since(start)
	s.RegisterAccount(t, "someone", "a-password")
	t.Logf("InspIRCd and atheme-services up and linked in %v; an account registered in %v",
		started.Round(time.Millisecond), (time.Since(start) - started).Round(time.Millisecond))
	// atheme's own account of the link, e.g. "finished synching with
	// uplink (2 ms)".
	for _, line := range strings.Split(readFile(filepath.Join(s.Dir, "atheme.out")), "\n") {
		if strings.Contains(line, "synching with uplink") {
			t.Log(line)
		}
	}
}

func TestParseRawLine(t *testing.T) {
	l := parseRawLine("@time=x :NickServ!NickServ@services.test NOTICE me :hello  there")
	if l.source != "NickServ!NickServ@services.test" || l.nick() != "NickServ" || l.command != "NOTICE" ||
		len(l.params) != 2 || l.params[0] != "me" || l.trailing() != "hello  there" {
		t.Fatalf("%+v", l)
	}
	if l := parseRawLine("PING :abc"); l.command != "PING" || l.trailing() != "abc" || l.source != "" {
		t.Fatalf("%+v", l)
	}
}

// stopTB records a Fatalf or Skipf and ends the goroutine, as testing does.
type stopTB struct {
	testing.TB
	fatal, skip string
}

func (r *stopTB) Helper() {}
func (r *stopTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *stopTB) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestMissingServer: a server that is not installed skips the test, or
// fails it under TRIBUTARY_REQUIRE_IRC=1 (as in CI).
func TestMissingServer(t *testing.T) {
	for _, require := range []string{"", "1"} {
		t.Run("require="+require, func(t *testing.T) {
			t.Setenv(EnvRequire, require)
			r := &stopTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				lookBin(r, "nosuchd", "tributary-no-such-server", "/nonexistent/nosuchd", "nosuchd-pkg")
			}()
			<-done
			want, other := &r.skip, r.fatal
			if require == "1" {
				want, other = &r.fatal, r.skip
			}
			if !strings.Contains(*want, "nosuchd is not installed (apt-get install nosuchd-pkg") || other != "" {
				t.Fatalf("fatal %q, skip %q", r.fatal, r.skip)
			}
		})
	}
}
