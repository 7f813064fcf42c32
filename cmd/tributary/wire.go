package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/pusher"
	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/appservice/routes"
	"github.com/tributary-hs/tributary/bridges/manager"
	"github.com/tributary-hs/tributary/core/admin"
	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/ephemeral"
	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/httpx"
	ckeys "github.com/tributary-hs/tributary/core/keys"
	"github.com/tributary-hs/tributary/core/media"
	"github.com/tributary-hs/tributary/core/netguard"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/users"
	"github.com/tributary-hs/tributary/federation/keys"
	"github.com/tributary-hs/tributary/federation/outbound"
	"github.com/tributary-hs/tributary/importer"
	"github.com/tributary-hs/tributary/storage"
)

// coreServices are the services every role that writes needs: the server,
// and the CLI when no server runs on the data directory.
type coreServices struct {
	notifier    *stream.Local
	keys        *ckeys.Service
	appservices *registry.Registry
	push        *push.Service
	rooms       *rooms.Service
	users       *users.Service
	ephemeral   *ephemeral.Service
	// bridging is the appservice contract, for the HTTP routes, the plugin
	// host and importers alike.
	bridging *bridging.Service
	// ring is this server's signing key and the cache of other servers'
	// keys; fedClient reaches other servers (nil: federation off).
	ring      *keys.Ring
	fedClient *federation.Client
	// imports are who `tributary import` acts as, by network.
	imports map[string]*importer.Identity
}

// buildCore wires the core services on store; failedLogins (nil: no limit)
// counts wrong passwords per account. stop releases them.
func buildCore(ctx context.Context, cfg *config.Config, store storage.Store, log *slog.Logger,
	failedLogins *httpx.Limiter) (*coreServices, error) {
	c := &coreServices{}
	var err error
	if c.notifier, err = newNotifier(ctx, store); err != nil {
		return nil, err
	}
	signingKey, err := keys.LoadOrCreate(ctx, store)
	if err != nil {
		return nil, err
	}
	if err := c.buildFederation(cfg, store, signingKey, log); err != nil {
		return nil, err
	}
	var remoteKeys ckeys.RemoteKeys
	if c.fedClient != nil {
		remoteKeys = outbound.Keys{Client: c.fedClient}
	}
	if c.keys, err = ckeys.New(store, c.notifier, ckeys.Options{ServerName: cfg.ServerName, Logger: log,
		Remote: remoteKeys}); err != nil {
		return nil, err
	}
	// Bridge plugins are appservices too (internal registrations), so that
	// core's appservice rules and interest queues apply to them.
	pluginRegs, err := manager.Registrations(cfg.Plugins, cfg.ServerName)
	if err != nil {
		return nil, err
	}
	importRegs, imports, err := importIdentities(cfg)
	if err != nil {
		return nil, err
	}
	c.imports = imports
	if c.appservices, err = registry.LoadWith(cfg.AppServiceConfigFiles, cfg.ServerName, append(pluginRegs, importRegs...)); err != nil {
		return nil, err
	}
	var pushOpts []push.Option
	if cfg.Push.ThreadSubscriptions {
		pushOpts = append(pushOpts, push.WithThreadSubscriptions())
	}
	if c.push, err = push.New(store, c.notifier, pushOpts...); err != nil {
		return nil, err
	}
	if err := c.push.Start(ctx); err != nil {
		return nil, err
	}
	var remote rooms.RemoteRooms
	if c.fedClient != nil {
		remote = outbound.Remote{Client: c.fedClient}
	}
	if err := c.buildFederation(cfg, store, signingKey, log); err != nil {
		return nil, err
	}
	interest := []rooms.InterestResolver{pusher.Interest{Registry: c.appservices}}
	if cfg.Federation.Enabled {
		// Events are queued for other servers in the transaction that
		// persists them, whichever process (or CLI command) writes them.
		interest = append(interest, outbound.Interest{ServerName: cfg.ServerName, FederatesWith: cfg.Federation.FederatesWith})
	}
	c.rooms, err = rooms.New(store, rooms.Options{ServerName: cfg.ServerName, Logger: log, Remote: remote,
		Profiles: users.ProfileReader{Store: store}, Pusher: c.push, WriterIdle: cfg.Rooms.WriterIdle.Duration, DefaultVersion: id.RoomVersion(cfg.Rooms.DefaultVersion),
		Interest: interest, QueryAlias: routes.NewQuerier(c.appservices).QueryAlias,
		ReservedAlias: routes.ReservedAlias(c.appservices),
		Signer:        events.NewSigner(cfg.ServerName, signingKey), Notifier: c.notifier, Restrictions: store,
		AccountData: store, KeyRing: c.ring})
	if err != nil {
		return nil, err
	}
	c.rooms.Start(ctx)
	var limit users.Limiter
	if failedLogins != nil {
		limit = failedLogins
	}
	var remoteProfiles users.RemoteProfiles
	if c.fedClient != nil {
		remoteProfiles = outbound.Profiles{Client: c.fedClient}
	}
	c.users, err = users.New(store, users.Options{
		ExclusiveUser:    routes.Exclusive(c.appservices),
		QueryUser:        routes.NewQuerier(c.appservices).QueryUser,
		RemoteProfiles:   remoteProfiles,
		AppServiceOwns:   routes.Owns(c.appservices),
		FailedPasswords:  limit,
		OnDevicesDeleted: c.devicesDeleted,
		Rooms:            c.rooms,
		Notifier:         c.notifier,
		ServerName:       cfg.ServerName,

		RegistrationEnabled: cfg.Registration.Enabled,
		RequiresToken:       cfg.Registration.RequiresToken,
		SharedSecret:        cfg.Registration.SharedSecret,
		PasswordMinLength:   cfg.Registration.PasswordMinLength,
		AccessTokenLifetime: cfg.Auth.AccessTokenLifetime.Duration,
		LoginTokenLifetime:  cfg.Auth.LoginTokenLifetime.Duration,
		UIASessionLifetime:  cfg.Auth.UIASessionLifetime.Duration,
		Logger:              log,
	})
	if err != nil {
		c.rooms.Stop()
		return nil, err
	}
	for _, as := range c.appservices.All() {
		if as.Silent {
			continue // an import's bot is made by the first import (importer.Local.Identity)
		}
		if err := c.users.EnsureAppServiceSender(ctx, as.Reg.ID, as.Sender); err != nil {
			c.rooms.Stop()
			return nil, fmt.Errorf("appservice %s: %w", as.Reg.ID, err)
		}
	}
	c.ephemeral, err = ephemeral.New(store, c.rooms.Reader, c.notifier, ephemeral.Options{ServerName: cfg.ServerName,
		PresenceEnabled: cfg.Presence.Enabled, OfflineAfter: cfg.Presence.OfflineAfter.Duration,
		RemoteOfflineAfter: cfg.Presence.RemoteOfflineAfter.Duration,
		Federation:         cfg.Federation.Enabled, Logger: log})
	if err == nil {
		c.bridging, err = bridging.New(bridging.Deps{Namespaces: c.appservices, Accounts: c.users, Rooms: c.rooms,
			Receipts: c.ephemeral, Logger: log})
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

var _ rooms.KeyRing = (*keys.Ring)(nil)

// buildFederation builds the key ring and, when federation is on, the
// signing client that reaches other servers through the SSRF guard.
func (c *coreServices) buildFederation(cfg *config.Config, store storage.Store, key *federation.SigningKey, log *slog.Logger) error {
	fc := cfg.Federation
	var fetcher keys.Fetcher
	if fc.Enabled {
		var allowed []netip.Prefix
		for _, r := range fc.AllowedRanges {
			allowed = append(allowed, netip.MustParsePrefix(r)) // checked by Validate
		}
		c.fedClient = outbound.NewClient(outbound.ClientOptions{ServerName: cfg.ServerName, Key: key, Allowed: allowed,
			InsecureSkipVerify: fc.InsecureSkipVerify, FederatesWith: fc.FederatesWith})
		fetcher = c.fedClient
	}
	var err error
	c.ring, err = keys.NewRing(keys.Options{ServerName: cfg.ServerName, Key: key, Store: store, Fetcher: fetcher,
		Notaries: fc.TrustedKeyServers, Logger: log})
	return err
}

// devicesDeleted removes what hangs off deleted devices: their end-to-end
// keys and their pushers.
func (c *coreServices) devicesDeleted(ctx context.Context, user id.UserID, devices []id.DeviceID) {
	c.keys.DevicesDeleted(ctx, user, devices)
	c.push.DevicesDeleted(ctx, user, devices)
}

// stop cancels the typing timers and waits for the room writers to finish
// what they hold.
func (c *coreServices) stop() {
	if c.ephemeral != nil {
		c.ephemeral.Stop()
	}
	c.rooms.Stop()
}

// newRemoteMedia downloads other servers' media with the federation
// client; the URLs a server redirects downloads to are fetched through
// the SSRF guard with federation's allowed ranges.
func newRemoteMedia(cfg *config.Config, client *federation.Client) media.RemoteMedia {
	var allowed []netip.Prefix
	for _, r := range cfg.Federation.AllowedRanges {
		allowed = append(allowed, netip.MustParsePrefix(r)) // checked by Validate
	}
	tr := netguard.Guard{Allowed: allowed}.Transport(30 * time.Second)
	if cfg.Federation.InsecureSkipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback tests only (config)
	}
	return outbound.Media{Client: client, Redirects: &http.Client{Transport: tr, Timeout: 5 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// importTarget is the Target of a network's import on these services.
func (c *coreServices) importTarget(store storage.Store, media importer.Media, network string) (*importer.Local, error) {
	return importer.NewLocal(importer.LocalDeps{Identities: c.imports, Owns: c.appservices.OwnsUser,
		Contract: c.bridging, Accounts: c.users, Rooms: c.rooms, Media: media, Store: store}, network)
}

// adminAPI is the admin API on these services, for the HTTP routes and the
// control socket, and for `tributary admin` on a stopped server's data
// (register and destinations nil there: no HTTP, no federation sender).
func (c *coreServices) adminAPI(cfg *config.Config, mediaSvc *media.Service, register *httpx.Limiter,
	destinations admin.Destinations, log *slog.Logger) *admin.API {
	var notices *admin.Notices
	if cfg.ServerNotices.Enabled {
		notices = &admin.Notices{Users: c.users, Rooms: c.rooms, Localpart: cfg.ServerNotices.Localpart,
			RoomName: cfg.ServerNotices.RoomName}
	}
	return admin.New(c.users, register, notices, admin.Options{Rooms: c.rooms, RoomReader: c.rooms, Reports: c.rooms,
		RoomWriter: c.rooms, RoomDeleter: c.rooms, History: c.rooms, RoomAdmin: c.rooms, Media: mediaSvc,
		Destinations: destinations, Version: version, Logger: log})
}
