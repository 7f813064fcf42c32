package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	gproto "google.golang.org/protobuf/proto"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// State is where a supervised plugin is in its life.
type State string

const (
	// StateStarting: launching (the first time, or again after a backoff).
	StateStarting State = "starting"
	// StateRunning: handshake done, Start answered, events flow.
	StateRunning State = "running"
	// StateRestarting: it ran, then crashed or hung; waiting out the backoff.
	StateRestarting State = "restarting"
	// StateFailed: the last launch failed (handshake, checksum, Start); it is
	// tried again after the backoff.
	StateFailed State = "failed"
	// StateStopped: Stop was called.
	StateStopped State = "stopped"
)

// Status is a snapshot of a supervised plugin.
type Status struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Restarts counts launches after the first.
	Restarts int `json:"restarts"`
	// LastError is why the plugin last stopped running or failed to start.
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since"`
	// PID is the plugin process's while it runs.
	PID int `json:"pid,omitempty"`
	// Network and Version are what the plugin said of itself (Describe).
	Network string `json:"network,omitempty"`
	Version string `json:"version,omitempty"`
}

// ErrNotRunning is returned by Deliver while the plugin is not running;
// the caller's queue keeps the transaction and retries.
var ErrNotRunning = errors.New("plugin is not running")

// Config describes one plugin to supervise.
type Config struct {
	// Name identifies the plugin in logs and Status.
	Name string
	// Path is the plugin binary; Args and Env its arguments and its whole
	// environment (the host's is not inherited).
	Path string
	Args []string
	Env  []string
	// Checksum, when set, is the SHA-256 the binary must have.
	Checksum []byte
	// Host is served to the plugin through the broker.
	Host proto.MatrixHostServer
	// Start is sent to the plugin after each launch (HostBrokerId filled in).
	Start *proto.StartRequest
	// OnRunning, if set, is called after each successful launch (e.g. to
	// wake the queue that feeds Deliver).
	OnRunning func()
	Logger    *slog.Logger

	// MinBackoff and MaxBackoff bound the wait before a relaunch, doubled
	// after each failure (defaults 500 ms and 1 min); a plugin that ran for
	// MaxBackoff starts again from MinBackoff.
	MinBackoff, MaxBackoff time.Duration
	// HealthInterval is how often the plugin is pinged, HealthTimeout how
	// long a ping may take before the plugin counts as hung (10 s, 5 s).
	HealthInterval, HealthTimeout time.Duration
	// StartTimeout bounds the handshake and the Start call (30 s).
	StartTimeout time.Duration
	// AckTimeout is how long a delivered transaction may wait for its
	// acknowledgement before the plugin counts as hung and is restarted
	// (2 min): its gRPC server may answer health checks while its event
	// handling is stuck.
	AckTimeout time.Duration
}

// Supervisor runs one plugin process and keeps it running.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	status  Status
	cur     *session      // nil unless running
	changed chan struct{} // closed and replaced on every status change
	cancel  context.CancelFunc
	done    chan struct{}
}

// New checks the configuration; Start launches the plugin.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Name == "" || cfg.Path == "" || cfg.Host == nil {
		return nil, errors.New("host: a plugin needs a name, a binary and a MatrixHost")
	}
	if cfg.Checksum != nil && len(cfg.Checksum) != sha256.Size {
		return nil, fmt.Errorf("host: plugin %s: the checksum must be a SHA-256 (%d bytes)", cfg.Name, sha256.Size)
	}
	if cfg.Start == nil {
		cfg.Start = &proto.StartRequest{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MinBackoff, 500*time.Millisecond)
	def(&cfg.MaxBackoff, time.Minute)
	def(&cfg.HealthInterval, 10*time.Second)
	def(&cfg.HealthTimeout, 5*time.Second)
	def(&cfg.StartTimeout, 30*time.Second)
	def(&cfg.AckTimeout, 2*time.Minute)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("plugin", cfg.Name)
	return &Supervisor{cfg: cfg, log: log, changed: make(chan struct{}),
		status: Status{Name: cfg.Name, State: StateStopped, Since: time.Now()}}, nil
}

// Start launches the plugin and supervises it until Stop.
func (s *Supervisor) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go s.run(ctx)
}

// Stop asks the plugin to stop, ends its process and waits for that.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Status returns a snapshot.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Wait returns once cond holds for the status (checked at each change),
// or with ctx's error.
func (s *Supervisor) Wait(ctx context.Context, cond func(Status) bool) error {
	for {
		s.mu.Lock()
		st, ch := s.status, s.changed
		s.mu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("plugin %s is %s (%s): %w", st.Name, st.State, st.LastError, ctx.Err())
		}
	}
}

func (s *Supervisor) setState(state State, err error, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.State, s.status.Since = state, time.Now()
	if err != nil {
		s.status.LastError = err.Error()
	}
	if state == StateStarting && s.status.LastError != "" {
		s.status.Restarts++
	}
	s.cur = sess
	s.status.PID = 0
	if sess != nil {
		if rc := sess.client.ReattachConfig(); rc != nil {
			s.status.PID = rc.Pid
		}
		s.status.Network, s.status.Version = sess.desc.GetNetwork(), sess.desc.GetVersion()
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Supervisor) run(ctx context.Context) {
	defer close(s.done)
	backoff := s.cfg.MinBackoff
	var lastErr string
	for {
		s.setState(StateStarting, nil, nil)
		sess, err := s.launch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				s.setState(StateStopped, nil, nil)
				return
			}
			// One clear line per distinct failure; repeats are quieter.
			if err.Error() != lastErr {
				s.log.Error("plugin failed to start", "err", err, "retry_in", backoff)
			} else {
				s.log.Debug("plugin failed to start again", "err", err, "retry_in", backoff)
			}
			lastErr = err.Error()
			s.setState(StateFailed, err, nil)
		} else {
			lastErr = ""
			started := time.Now()
			s.setState(StateRunning, nil, sess)
			s.log.Info("plugin running", "network", sess.desc.GetNetwork(), "version", sess.desc.GetVersion())
			if s.cfg.OnRunning != nil {
				s.cfg.OnRunning()
			}
			err = s.watch(ctx, sess)
			s.setState(StateRestarting, err, nil)
			stopping := ctx.Err() != nil
			s.end(sess, stopping)
			if stopping {
				s.setState(StateStopped, nil, nil)
				return
			}
			s.log.Error("plugin stopped running; restarting", "err", err, "retry_in", backoff)
			if time.Since(started) >= s.cfg.MaxBackoff {
				backoff = s.cfg.MinBackoff
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.setState(StateStopped, nil, nil)
			return
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// launch starts the process, performs the handshake, serves MatrixHost,
// calls Start and opens the event stream.
func (s *Supervisor) launch(ctx context.Context) (*session, error) {
	cmd := exec.Command(s.cfg.Path, s.cfg.Args...)
	cmd.Env = s.cfg.Env
	var secure *plugin.SecureConfig
	if s.cfg.Checksum != nil {
		secure = &plugin.SecureConfig{Checksum: s.cfg.Checksum, Hash: sha256.New()}
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: pluginSets(),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     s.cfg.StartTimeout,
		Logger:           newHCLogger(s.log),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(proto.MaxMessageBytes), grpc.MaxCallSendMsgSize(proto.MaxMessageBytes))},
	})
	fail := func(what string, err error) (*session, error) {
		client.Kill()
		return nil, fmt.Errorf("plugin %s: %s: %w", s.cfg.Name, what, err)
	}
	rpc, err := client.Client()
	if err != nil {
		what := "launch failed"
		// go-plugin's errors are only text.
		if msg := strings.ToLower(err.Error()); strings.Contains(msg, "incompatible api version") ||
			strings.Contains(msg, "plugin message") || strings.Contains(msg, "timeout while waiting") ||
			strings.Contains(msg, "exited before we could connect") {
			what = "handshake failed"
		}
		return fail(what, err)
	}
	if v := client.NegotiatedVersion(); v != proto.ProtocolVersion {
		return fail("handshake failed", fmt.Errorf("API version %d is not served", v))
	}
	raw, err := rpc.Dispense(proto.PluginName)
	if err != nil {
		return fail("dispensing the bridge", err)
	}
	d, ok := raw.(*dispensed)
	if !ok {
		return fail("dispensing the bridge", fmt.Errorf("unexpected %T", raw))
	}
	brokerID := d.broker.NextId()
	go d.broker.AcceptAndServe(brokerID, func(opts []grpc.ServerOption) *grpc.Server {
		srv := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(proto.MaxMessageBytes))...)
		proto.RegisterMatrixHostServer(srv, s.cfg.Host)
		return srv
	})
	req, _ := gproto.Clone(s.cfg.Start).(*proto.StartRequest)
	req.HostBrokerId = brokerID
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	_, err = d.bridge.Start(sctx, req)
	cancel()
	if err != nil {
		return fail("Start", err)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	desc, err := d.bridge.Describe(dctx, &proto.DescribeRequest{})
	cancel()
	if err != nil {
		return fail("Describe", err)
	}
	sess := newSession(client, rpc, d.bridge)
	sess.desc = desc
	if err := sess.open(); err != nil {
		return fail("opening the event stream", err)
	}
	return sess, nil
}

// watch returns why a running plugin stopped: its stream broke (it
// crashed), a health check failed (it hung), or ctx ended.
func (s *Supervisor) watch(ctx context.Context, sess *session) error {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sess.dead:
			if sess.client.Exited() {
				return fmt.Errorf("plugin %s exited: %w", s.cfg.Name, sess.err)
			}
			return fmt.Errorf("plugin %s: event stream broke: %w", s.cfg.Name, sess.err)
		case <-t.C:
			if sess.client.Exited() {
				return fmt.Errorf("plugin %s exited", s.cfg.Name)
			}
			if err := ping(sess.rpc, s.cfg.HealthTimeout); err != nil {
				return fmt.Errorf("plugin %s failed its health check: %w", s.cfg.Name, err)
			}
		}
	}
}

func ping(rpc plugin.ClientProtocol, timeout time.Duration) error {
	res := make(chan error, 1)
	go func() { res <- rpc.Ping() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
		return fmt.Errorf("no answer within %s", timeout)
	}
}

// end stops the plugin: gracefully (Stop) when the host stops it, then in
// any case the process.
func (s *Supervisor) end(sess *session, graceful bool) {
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := sess.bridge.Stop(ctx, &proto.StopRequest{}); err != nil {
			s.log.Warn("plugin Stop failed", "err", err)
		}
		cancel()
	}
	sess.close(errors.New("plugin ended"))
	if !graceful {
		// go-plugin's Kill first asks the plugin to shut down and waits for
		// the answer, which a hung plugin never gives: end it first.
		if rc := sess.client.ReattachConfig(); rc != nil && rc.Pid > 0 {
			if p, err := os.FindProcess(rc.Pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	sess.client.Kill()
}

// Deliver sends a transaction to the running plugin and waits for its
// acknowledgement: nil once the plugin acknowledged it; an error (the
// plugin is not running, its stream broke, it answered with an error, ctx
// ended) means the transaction is to be sent again.
func (s *Supervisor) Deliver(ctx context.Context, txn *proto.Transaction) error {
	s.mu.Lock()
	sess := s.cur
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("plugin %s: %w", s.cfg.Name, ErrNotRunning)
	}
	actx, cancel := context.WithTimeoutCause(ctx, s.cfg.AckTimeout, errAckTimeout)
	defer cancel()
	err := sess.deliver(actx, txn)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errAckTimeout) {
		err = fmt.Errorf("plugin %s: transaction %d not acknowledged within %s", s.cfg.Name, txn.Id, s.cfg.AckTimeout)
		sess.close(err) // watch restarts it
	}
	return err
}

var errAckTimeout = errors.New("acknowledgement timeout")

// Describe asks the running plugin who it is.
func (s *Supervisor) Describe(ctx context.Context) (*proto.DescribeResponse, error) {
	s.mu.Lock()
	sess := s.cur
	s.mu.Unlock()
	if sess == nil {
		return nil, fmt.Errorf("plugin %s: %w", s.cfg.Name, ErrNotRunning)
	}
	return sess.bridge.Describe(ctx, &proto.DescribeRequest{})
}
