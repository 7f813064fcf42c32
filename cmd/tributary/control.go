package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/manager"
	"github.com/tributary-hs/tributary/core/admin"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
	"github.com/tributary-hs/tributary/importer"
)

// The control socket lets `tributary user …` act through a server running
// on the same data directory, so that a command takes effect in it at once
// (its caches, its room writers) instead of writing behind its back. It is
// a Unix socket only the server's user can open (mode 0600): the same
// people who can read the database.

// controlPath is the control socket of the server on cfg's data directory.
func controlPath(cfg *config.Config) string {
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		abs = cfg.DataDir
	}
	return filepath.Join(abs, "control.sock")
}

// listenControl opens the control socket; it refuses to start a second
// server on a data directory whose server answers there.
func listenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w on %s (it answers on %s)", errServerRunning, filepath.Dir(path), path)
	}
	_ = os.Remove(path) // left behind by a server that was killed
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// controlHandler serves the control socket's operations, each one call of
// the same core service method the HTTP API uses.
func controlHandler(us *users.Service, plugins *manager.Manager, imports func(network string) (*importer.Local, error),
	adminAPI *admin.API, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	registerImport(mux, imports, log)
	registerAdmin(mux, adminAPI)
	// POST /v1/plugins/list {}
	mux.HandleFunc("POST /v1/plugins/list", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, map[string]any{"plugins": plugins.Status()})
	})
	// POST /v1/users/deactivate {"user": "alice" or "@alice:server"}
	mux.HandleFunc("POST /v1/users/deactivate", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User string `json:"user"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.User == "" {
			writeControl(w, types.BadJSON("expected {\"user\": NAME}"))
			return
		}
		userID, err := us.DeactivateByName(r.Context(), req.User)
		if err != nil {
			writeControl(w, err)
			return
		}
		log.Info("deactivated through the control socket", "user", userID)
		writeControl(w, map[string]id.UserID{"user_id": userID})
	})
	return mux
}

func writeControl(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err, ok := v.(error); ok {
		me, isMatrix := types.AsError(err)
		if !isMatrix {
			me = types.NewError(http.StatusInternalServerError, types.CodeUnknown, "%v", err)
		}
		w.WriteHeader(me.Status)
		v = me.Body()
	}
	_ = json.NewEncoder(w).Encode(v)
}

// errServerRunning: a server answers on the control socket already.
var errServerRunning = errors.New("another tributary server is running")

// errNoServer: nothing answers on the control socket.
var errNoServer = errors.New("no server runs on this data directory")

// callControl sends one operation to the server on the data directory and
// decodes its answer into out; errNoServer when none listens.
func callControl(ctx context.Context, cfg *config.Config, op string, in, out any) error {
	path := controlPath(cfg)
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return errNoServer
	}
	conn.Close()
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://control/v1/"+op, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the server on %s: %w", cfg.DataDir, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    string `json:"errcode"`
			Message string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return types.NewError(resp.StatusCode, e.Code, "%s", e.Message)
	}
	return json.Unmarshal(raw, out)
}
