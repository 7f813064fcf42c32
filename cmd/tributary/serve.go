package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/tributary-hs/tributary/appservice/pusher"
	"github.com/tributary-hs/tributary/appservice/routes"
	"github.com/tributary-hs/tributary/bridges/manager"
	"github.com/tributary-hs/tributary/core/admin"
	"github.com/tributary-hs/tributary/core/clientapi"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/delayed"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/netguard"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/push/gateway"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	tsync "github.com/tributary-hs/tributary/core/sync"
	"github.com/tributary-hs/tributary/federation/inbound"
	"github.com/tributary-hs/tributary/federation/outbound"
	"github.com/tributary-hs/tributary/importer"
	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/open"
)

type serveFlags struct {
	appservices        []string
	listen             string
	enableRegistration bool
	sharedSecret       string
	disableRateLimits  bool
	metricsListen      string

	federationListen     string
	tlsCert, tlsKey      string
	tlsSelfSigned        bool
	insecureSkipVerify   bool
	federationAllowRange []string
	noFederation         bool
}

func newServeCmd(g *globalFlags) *cobra.Command {
	sf := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the homeserver",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := loadConfig(cmd, g, func(c *config.Config) {
				f := cmd.Flags()
				if f.Changed("listen") {
					c.Listen = sf.listen
				}
				if f.Changed("enable-registration") {
					c.Registration.Enabled = sf.enableRegistration
				}
				if f.Changed("registration-shared-secret") {
					c.Registration.SharedSecret = sf.sharedSecret
				}
				if f.Changed("metrics-listen") {
					c.Metrics.Enabled, c.Metrics.Listen = true, sf.metricsListen
				}
				if f.Changed("disable-rate-limits") {
					c.RateLimits.Enabled = !sf.disableRateLimits
				}
				c.AppServiceConfigFiles = append(c.AppServiceConfigFiles, sf.appservices...)
				fed := &c.Federation
				if f.Changed("federation-listen") {
					fed.Listen = sf.federationListen
				}
				if f.Changed("tls-cert") {
					fed.TLSCert = sf.tlsCert
				}
				if f.Changed("tls-key") {
					fed.TLSKey = sf.tlsKey
				}
				if f.Changed("tls-self-signed") {
					fed.TLSSelfSigned = sf.tlsSelfSigned
				}
				if f.Changed("federation-insecure-skip-verify") {
					fed.InsecureSkipVerify = sf.insecureSkipVerify
				}
				if f.Changed("no-federation") {
					fed.Enabled = !sf.noFederation
				}
				fed.AllowedRanges = append(fed.AllowedRanges, sf.federationAllowRange...)
			})
			if err != nil {
				return err
			}
			if path == "" && g.config == "" {
				if err := writeFirstConfig(cmd, cfg); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.listen, "listen", "", "host:port to listen on (default 127.0.0.1:8008)")
	f.BoolVar(&sf.enableRegistration, "enable-registration", false, "open registration (m.login.dummy)")
	f.StringVar(&sf.sharedSecret, "registration-shared-secret", "", "enable Synapse-style shared-secret registration")
	f.BoolVar(&sf.disableRateLimits, "disable-rate-limits", false, "turn every rate limit off (load tests)")
	f.StringArrayVar(&sf.appservices, "appservice", nil, "an appservice registration file (repeatable)")
	f.StringVar(&sf.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this host:port (off the client port)")
	f.StringVar(&sf.federationListen, "federation-listen", "", "host:port of a TLS listener for other servers (usually :8448)")
	f.StringVar(&sf.tlsCert, "tls-cert", "", "PEM certificate of the federation listener")
	f.StringVar(&sf.tlsKey, "tls-key", "", "PEM private key of the federation listener")
	f.BoolVar(&sf.tlsSelfSigned, "tls-self-signed", false, "give the federation listener a certificate generated for the server name")
	f.BoolVar(&sf.insecureSkipVerify, "federation-insecure-skip-verify", false, "do not verify other servers' certificates (loopback tests only)")
	f.StringArrayVar(&sf.federationAllowRange, "federation-allow-range", nil, "an IP range (CIDR) of other servers reached although private or loopback (repeatable)")
	f.BoolVar(&sf.noFederation, "no-federation", false, "switch federation off")
	return cmd
}

// writeFirstConfig writes <data_dir>/tributary.yaml on the first start, so a
// newcomer has a commented file to edit. It holds the defaults with only the
// server name and data directory of this start: other flags (open
// registration, no rate limits, a database URL with its password) are meant
// for one run and must not become permanent.
func writeFirstConfig(cmd *cobra.Command, cfg *config.Config) error {
	path := filepath.Join(cfg.DataDir, "tributary.yaml")
	c := config.Default()
	c.ServerName, c.DataDir = cfg.ServerName, cfg.DataDir
	out, err := config.Commented(c)
	if err != nil {
		return err
	}
	if err := writeNewFile(path, out); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Wrote a commented configuration to %s\n", path)
	return nil
}

func newLogger(cfg *config.Config) *slog.Logger { return newLoggerTo(cfg, os.Stderr) }

func newLoggerTo(cfg *config.Config, out io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// setMemoryLimit applies memory_limit_mib, unless GOMEMLIMIT set the
// runtime's limit already.
func setMemoryLimit(cfg *config.Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" || cfg.MemoryLimitMiB == 0 {
		return
	}
	debug.SetMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	log.Debug("memory limit", "mib", cfg.MemoryLimitMiB)
}

// setGCPercent applies gc_percent, unless GOGC set the runtime's already.
func setGCPercent(cfg *config.Config, log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(cfg.GCPercent)
	log.Debug("gc percent", "percent", cfg.GCPercent)
}

// logBuffer is how many bytes of log lines the server holds for a slow
// sink before a request waits for it: a crowd's burst (2,000 request
// lines when one message wakes 2,000 long-polls) is about 0.5 MiB.
const logBuffer = 2 << 20

// openStore opens the database and checks that it belongs to this server name.
func openStore(ctx context.Context, cfg *config.Config) (storage.Store, error) {
	store, err := open.Open(ctx, cfg.DatabaseDSN(), open.Options{SQLiteCacheMiB: cfg.Database.SQLiteCacheMiB,
		SQLiteBulk: cfg.Database.SQLiteBulk})
	if err != nil {
		return nil, err
	}
	name, err := store.GetMeta(ctx, "server_name")
	switch {
	case errors.Is(err, storage.ErrNotFound):
		err = store.SetMeta(ctx, "server_name", cfg.ServerName)
	case err == nil && name != cfg.ServerName:
		err = fmt.Errorf("server_name is %q but the database belongs to %q; the server name cannot change", cfg.ServerName, name)
	}
	if err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// postgresURL is the server's database URL when it is PostgreSQL, where
// plugins keep their bridge databases too ("" for SQLite).
func postgresURL(cfg *config.Config) string {
	if u := cfg.DatabaseDSN(); strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return u
	}
	return ""
}

// newMedia builds the media repository on <data_dir>/media.
func newMedia(store storage.Store, cfg *config.Config, log *slog.Logger, remote media.RemoteMedia) (*media.Service, error) {
	files, err := media.NewDirStore(filepath.Join(cfg.DataDir, "media"))
	if err != nil {
		return nil, err
	}
	var allowed []netip.Prefix
	for _, r := range cfg.Media.URLPreviews.AllowedRanges {
		allowed = append(allowed, netip.MustParsePrefix(r)) // checked by Validate
	}
	return media.New(store, files, media.Options{ServerName: cfg.ServerName, MaxUploadBytes: cfg.Media.MaxUploadBytes,
		UserQuotaBytes: cfg.Media.UserQuotaBytes, MaxImagePixels: cfg.Media.MaxImagePixels,
		LegacyUnauthenticated: cfg.Media.LegacyUnauthenticated, Logger: log, Remote: remote,
		Preview: media.PreviewOptions{Enabled: cfg.Media.URLPreviews.Enabled, Allowed: allowed}})
}

// newPushGateway builds the delivery of notifications to push gateways.
func newPushGateway(store storage.Store, cfg *config.Config, log *slog.Logger, rs *rooms.Reader,
	pushRules *push.Service, n stream.Notifier) (*gateway.Gateway, error) {
	var allowed []netip.Prefix
	for _, r := range cfg.Push.AllowedRanges {
		allowed = append(allowed, netip.MustParsePrefix(r)) // checked by Validate
	}
	pushRules.SetGatewayCheck(netguard.Guard{Allowed: allowed}.CheckHost)
	return gateway.New(store, rs, pushRules, gateway.Options{Allowed: allowed, Logger: log, Notifier: n})
}

// newNotifier starts the in-process notifier at the streams' stored positions.
func newNotifier(ctx context.Context, store storage.Store) (*stream.Local, error) {
	var start stream.Positions
	var err error
	if start[stream.Events], err = store.MaxStreamPos(ctx); err != nil {
		return nil, err
	}
	if start[stream.AccountData], err = store.MaxAccountDataPos(ctx); err != nil {
		return nil, err
	}
	if start[stream.Receipts], err = store.MaxReceiptPos(ctx); err != nil {
		return nil, err
	}
	if start[stream.ToDevice], err = store.MaxToDevicePos(ctx); err != nil {
		return nil, err
	}
	if start[stream.Presence], err = store.MaxPresencePos(ctx); err != nil {
		return nil, err
	}
	if start[stream.DeviceLists], err = store.MaxDeviceListPos(ctx); err != nil {
		return nil, err
	}
	return stream.NewLocal(start), nil
}

func limiter(rl config.RateLimits, r config.Rate) *httpx.Limiter {
	if !rl.Enabled {
		return nil
	}
	return httpx.NewLimiter(r.PerSecond, r.Burst)
}

func serve(ctx context.Context, cfg *config.Config) error {
	logOut := newLogWriter(os.Stderr, logBuffer)
	defer logOut.Close()
	log := newLoggerTo(cfg, logOut)
	slog.SetDefault(log)
	setMemoryLimit(cfg, log)
	setGCPercent(cfg, log)
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	rl := cfg.RateLimits
	failedLogins := limiter(rl, rl.LoginFailedAccount)
	core, err := buildCore(ctx, cfg, store, log, failedLogins)
	if err != nil {
		return err
	}
	defer core.stop()
	notifier, keysSvc, appservices, pushRules, rs, us, eph := core.notifier, core.keys, core.appservices, core.push,
		core.rooms, core.users, core.ephemeral
	us.Start(ctx)
	defer us.Stop()
	if err := eph.Start(ctx); err != nil {
		return err
	}
	var remoteMedia media.RemoteMedia
	if core.fedClient != nil {
		remoteMedia = newRemoteMedia(cfg, core.fedClient)
	}
	mediaSvc, err := newMedia(store, cfg, log, remoteMedia)
	if err != nil {
		return err
	}
	plugins, err := manager.New(manager.Deps{Plugins: cfg.Plugins, ServerName: cfg.ServerName, DataDir: cfg.DataDir,
		DatabaseURL: postgresURL(cfg), Registry: appservices, Queues: store, Notifier: notifier, Events: rs.Reader,
		Ephemeral: pusher.NewRoomEDUFeed(store, appservices, notifier, eph), Logger: log,
		Host: manager.HostDeps{Contract: core.bridging, Accounts: us, Memberships: rs, Rooms: rs.Reader,
			Ephemeral: eph, Push: pushRules, Media: mediaSvc, Exclusive: appservices, Portals: store,
			DefaultRoomVersion: cfg.Rooms.DefaultVersion},
		MinBackoff: cfg.AppServices.RetryBackoff.Duration, MaxBackoff: cfg.AppServices.MaxRetryBackoff.Duration})
	if err != nil {
		return err
	}
	imports := func(network string) (*importer.Local, error) { return core.importTarget(store, mediaSvc, network) }
	// The socket is taken now, so that a second server on the data
	// directory stops here; it answers once the admin API is built (a
	// command waits in the backlog meanwhile).
	ctl, err := listenControl(controlPath(cfg))
	if errors.Is(err, errServerRunning) {
		return err
	} else if err != nil {
		// Without it, `tributary user deactivate` would write behind this
		// server's back (it cannot tell that one runs).
		log.Warn("no control socket: CLI commands will not reach this server", "path", controlPath(cfg), "err", err)
	} else {
		defer func() {
			_ = ctl.Close()
			_ = os.Remove(controlPath(cfg))
		}()
	}
	auth := routes.NewAuthenticator(appservices, us, core.bridging, notifier)
	syncer, err := tsync.New(rs.Reader, eph, pushRules, store, notifier, tsync.WithDeviceLists(keysSvc))
	if err != nil {
		return err
	}
	asPusher, err := pusher.New(store, appservices, rs.Reader, notifier, log, pusher.WithEphemeral(eph, keysSvc),
		pusher.WithRetryBackoff(cfg.AppServices.RetryBackoff.Duration, cfg.AppServices.MaxRetryBackoff.Duration))
	if err != nil {
		return err
	}
	asPusher.Start(ctx)
	defer asPusher.Stop()
	plugins.Start(ctx)
	defer plugins.Stop()
	pushGateway, err := newPushGateway(store, cfg, log, rs.Reader, pushRules, notifier)
	if err != nil {
		return err
	}
	pushGateway.Start(ctx)
	defer pushGateway.Stop()
	var sender *outbound.Sender
	var destinations admin.Destinations
	if cfg.Federation.Enabled {
		fc := cfg.Federation
		if sender, err = outbound.NewSender(store, rs.Reader, eph, keysSvc, core.fedClient, notifier, outbound.SenderOptions{
			ServerName: cfg.ServerName, FederatesWith: fc.FederatesWith, FirstBackoff: fc.RetryBackoff.Duration,
			MaxBackoff: fc.MaxRetryBackoff.Duration, CatchUpAfter: fc.CatchUpAfter.Duration,
			PresencePing: presencePing(cfg.Presence), Logger: log}); err != nil {
			return err
		}
		if err := sender.Start(ctx); err != nil {
			return err
		}
		defer sender.Stop()
		destinations = destinationsAdmin{sender}
	}

	if addr := os.Getenv("TRIBUTARY_PPROF_ADDR"); addr != "" {
		// Profiling for benchmarks and debugging; never on unless asked for,
		// and only on the address given (keep it on loopback).
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			log.Warn("pprof listening", "addr", addr, "err", http.ListenAndServe(addr, mux))
		}()
	}
	// Start-up (migrations, loading keys and registrations) leaves garbage
	// behind; give its memory back before idling.
	debug.FreeOSMemory()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	if _, port, _ := net.SplitHostPort(cfg.Listen); port == "0" && cfg.PublicBaseURL == "http://"+cfg.Listen+"/" {
		// The derived base URL must name the port the kernel picked.
		cfg.PublicBaseURL = "http://" + ln.Addr().String() + "/"
	}
	var reg *prometheus.Registry
	if cfg.Metrics.Enabled {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			plugins.Collector())
		if sender != nil {
			reg.MustRegister(sender.Collector())
		}
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics: listen on %s: %w", cfg.Metrics.Listen, err)
		}
		defer mln.Close()
		msrv := &http.Server{Handler: httpx.MetricsHandler(reg), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(mln) }()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	engine, err := httpx.NewEngine(httpx.EngineOptions{Logger: log, MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		MaxMediaBytes: cfg.Media.MaxUploadBytes, TrustedProxies: cfg.HTTP.TrustedProxies, Metrics: reg,
		ServerName: cfg.ServerName, ReadBodyTimeout: cfg.HTTP.ReadBodyTimeout.Duration, ReadBodyMinRate: cfg.HTTP.ReadBodyMinRate})
	if err != nil {
		return err
	}
	delayedEvents, err := delayed.New(store, rs, notifier, delayed.Options{MaxDelay: cfg.Rooms.MaxEventDelay.Duration,
		MaxPerUser: cfg.Rooms.MaxDelayedEventsPerUser, Logger: log})
	if err != nil {
		return err
	}
	if err := delayedEvents.Start(ctx); err != nil {
		return err
	}
	defer delayedEvents.Stop()
	registerLimit := limiter(rl, rl.Register)
	clientapi.New(clientapi.Services{Users: us, Rooms: rs, Sync: syncer, Ephemeral: eph, Push: pushRules, Auth: auth,
		Keys: keysSvc, Bridging: core.bridging, Delayed: delayedEvents}, clientapi.Options{ServerName: cfg.ServerName, PublicBaseURL: cfg.PublicBaseURL,
		WellKnownServer: cfg.WellKnown.Server, DefaultRoomVersion: id.RoomVersion(cfg.Rooms.DefaultVersion), TURN: clientapi.TURN{URIs: cfg.VoIP.TurnURIs,
			SharedSecret: cfg.VoIP.TurnSharedSecret, UserLifetime: cfg.VoIP.TurnUserLifetime.Duration}}, clientapi.Limits{
		LoginAddress:       limiter(rl, rl.LoginAddress),
		LoginFailedAccount: failedLogins,
		Register:           registerLimit,
		Messages:           limiter(rl, rl.Messages),
		DelayedManagement:  limiter(rl, rl.DelayedEventManagement),
	}).Register(engine)
	adminAPI := core.adminAPI(cfg, mediaSvc, registerLimit, destinations, log)
	adminAPI.Register(engine)
	if ctl != nil {
		ctlSrv := &http.Server{Handler: controlHandler(us, plugins, imports, adminAPI, log), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ctlSrv.Serve(ctl) }()
		defer ctlSrv.Close()
	}
	fedOpts := inbound.Options{ServerName: cfg.ServerName, Version: version, Client: core.fedClient, Logger: log,
		FederatesWith: cfg.Federation.FederatesWith}
	if cfg.Federation.Enabled {
		fedOpts.Ring = core.ring
		fedOpts.Rooms, fedOpts.Ephemeral, fedOpts.Keys = rs, eph, keysSvc
		fedOpts.Contacted = sender.Contacted
		fedOpts.Media = mediaSvc
	}
	inbound.New(us, us, fedOpts).Register(engine)
	clientapi.NewMedia(mediaSvc, auth, limiter(rl, cfg.Media.Uploads), limiter(rl, cfg.Media.Previews)).Register(engine)
	routes.NewAPI(appservices, auth, core.bridging).Register(engine)

	// Requests run under reqCtx, cancelled at shutdown so that long-polls
	// answer at once instead of holding the shutdown for their timeout.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{Handler: engine, ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.Duration,
		IdleTimeout: cfg.HTTP.IdleTimeout.Duration, BaseContext: func(net.Listener) context.Context { return reqCtx },
		ConnContext: httpx.LaneConnContext}
	errc := make(chan error, 2)
	// /sync long-polls arriving in a crowd queue for the sync service's
	// lane before they are read (see httpx.LaneListener).
	laneLn := &httpx.LaneListener{Listener: ln, Lane: syncer.StreamLane(), Wanted: clientapi.LongPollHead}
	go func() { errc <- srv.Serve(laneLn) }()
	var fedSrv *http.Server
	if cfg.Federation.Enabled && cfg.Federation.Listen != "" {
		fln, tlsCfg, err := listenFederation(cfg)
		if err != nil {
			return err
		}
		defer fln.Close()
		fedSrv = &http.Server{Handler: engine, TLSConfig: tlsCfg, ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.Duration,
			IdleTimeout: cfg.HTTP.IdleTimeout.Duration, BaseContext: func(net.Listener) context.Context { return reqCtx }}
		go func() { errc <- fedSrv.ServeTLS(fln, "", "") }()
		log.Info("federation listening", "addr", fln.Addr().String())
	}
	log.Info("listening", "addr", ln.Addr().String(), "server_name", cfg.ServerName, "database", store.Backend(),
		"registration", cfg.Registration.Enabled)
	dropStartupPages()
	if n, err := us.CountAccounts(ctx); err == nil && n == 0 {
		fmt.Fprintf(os.Stderr, "\nNo users yet. Create the first (an admin) with:\n  %s user add alice --admin --data-dir %s\n\n",
			os.Args[0], cfg.DataDir)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	cancelRequests()
	// Requests in flight get two seconds; connections that never sent one
	// (which Shutdown would wait five seconds for) are closed after that.
	// Every write a client was told succeeded is committed already.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if fedSrv != nil {
		if err := fedSrv.Shutdown(shutdownCtx); err != nil {
			_ = fedSrv.Close()
		}
	}
	if err := srv.Shutdown(shutdownCtx); errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	} else if err != nil {
		return err
	}
	return nil
}

// presencePing is how often the sender sends local users' presence again
// (never with presence off).
func presencePing(p config.Presence) time.Duration {
	if !p.Enabled {
		return 0
	}
	return p.FederationPingInterval.Duration
}
