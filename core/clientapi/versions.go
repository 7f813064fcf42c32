package clientapi

import (
	"maps"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// supportedVersions lists the spec versions whose every Client-Server
// endpoint Tributary serves: all of them up to v1.19, the spec it follows
// (internal/e2e's TestEveryClientServerEndpointIsServed checks each
// endpoint of the spec against the binary). The r0 versions are served at
// /_matrix/client/r0 as well.
var supportedVersions = []string{
	"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
	"v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
}

// unstableFeatures lists the unstable features that truly work.
var unstableFeatures = map[string]bool{
	"org.matrix.msc3814": true, // dehydrated devices (keys.go)
	// Forward batch send for appservices (batchsend.go); mautrix bridges
	// backfill with it.
	"com.beeper.batch_sending": true,
	// Simplified sliding sync (sliding.go); Element X looks for it.
	"org.matrix.simplified_msc3575": true,
	// rel_types and not_rel_types in room event filters (filter.go in core/rooms).
	"org.matrix.msc3874": true,
	// Deleting account data (accountdata.go): an empty object in sync.
	"org.matrix.msc3391": true,
	// state_after in /sync (sync.go; stable since v1.16), also under the
	// unstable parameter and field names.
	"org.matrix.msc4222": true,
	// Invite filtering (core/rooms/invitepolicy.go): local invites the
	// invitee blocks are refused, ignored ones hidden from sync.
	"org.matrix.msc4155": true,
}

// GET /_matrix/client/versions
func (a *API) versions(c *gin.Context) {
	features := maps.Clone(unstableFeatures)
	if a.delayed != nil && a.delayed.Enabled() {
		// Delayed events (delayed.go); Element Call needs them.
		features["org.matrix.msc4140"] = true
	}
	if a.push.ThreadSubscriptionsEnabled() {
		// Thread subscriptions and their push rules (pushrules.go, core/push).
		features["org.matrix.msc4306"] = true
	}
	httpx.OK(c, gin.H{"versions": supportedVersions, "unstable_features": features})
}

// GET /.well-known/matrix/client
func (a *API) wellKnownClient(c *gin.Context) {
	httpx.OK(c, gin.H{"m.homeserver": gin.H{"base_url": strings.TrimSuffix(a.opts.PublicBaseURL, "/")}})
}

// GET /.well-known/matrix/server — served only when a delegated federation
// address is configured: until federation is built, advertising one would send
// other servers to a port that does not answer them.
func (a *API) wellKnownServer(c *gin.Context) {
	if a.opts.WellKnownServer == "" {
		httpx.Fail(c, types.NotFound("No server delegation is configured"))
		return
	}
	httpx.OK(c, gin.H{"m.server": a.opts.WellKnownServer})
}

// GET /_matrix/client/v3/capabilities
func (a *API) capabilities(c *gin.Context) {
	on := gin.H{"enabled": true}
	available := gin.H{}
	for _, v := range events.SupportedRoomVersions {
		available[string(v)] = "stable"
	}
	caps := gin.H{
		"m.room_versions":   gin.H{"default": a.opts.DefaultRoomVersion, "available": available},
		"m.change_password": on,
		"m.set_displayname": on,
		"m.set_avatar_url":  on,
		"m.3pid_changes":    gin.H{"enabled": false},
		"m.get_login_token": on,
		"m.profile_fields":  on,
		// Rooms are forgotten only when the user asks (spec v1.18, MSC4267):
		// said explicitly, so that clients offer leaving and forgetting apart.
		"m.forget_forced_upon_leave": gin.H{"enabled": false},
	}
	// Admins may suspend and lock accounts (omitted for everyone else).
	if admin, err := a.users.IsAdmin(c.Request.Context(), httpx.PrincipalOf(c).UserID); err != nil {
		httpx.Fail(c, err)
		return
	} else if admin {
		caps["m.account_moderation"] = gin.H{"suspend": true, "lock": true}
	}
	httpx.OK(c, gin.H{"capabilities": caps})
}
