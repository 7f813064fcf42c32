package users

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// restrictions are an account's suspension and lock, kept in memory
// (Service.restrictions) because every authenticated request needs them.
// Every change is published as a stream.Accounts change, whose observer
// forgets the cached flags, in this process and in any other.
// The shadow ban and the rate-limit override ride along: every send asks
// for them.
type restrictions struct {
	suspended, locked, shadowBanned bool
	rate                            *types.RateLimit
}

func (s *Service) restrictionsOf(ctx context.Context, userID id.UserID) (restrictions, error) {
	return s.restrictions.Get(userID, func() (restrictions, bool, error) {
		suspended, locked, err := s.store.AccountRestrictions(ctx, userID)
		if errors.Is(err, storage.ErrNotFound) {
			return restrictions{}, false, nil // appservice users and the like: nothing to restrict
		} else if err != nil {
			return restrictions{}, false, internal("account restrictions", err)
		}
		banned, override, err := s.store.AccountLimits(ctx, userID)
		if err != nil {
			return restrictions{}, false, internal("account limits", err)
		}
		r := restrictions{suspended: suspended, locked: locked, shadowBanned: banned}
		if override != nil {
			r.rate = &types.RateLimit{PerSecond: float64(override.PerSecond), Burst: int(override.Burst)}
		}
		return r, true, nil
	})
}

// accountsChanged is told of published changes to accounts: cached facts
// about them are forgotten.
func (s *Service) accountsChanged(c stream.Change) {
	if c.Stream != stream.Accounts {
		return
	}
	for _, u := range c.Users {
		// The cache is keyed by id.UserID: a plain string key would miss.
		s.restrictions.Forget(u)
		s.tokens.forget(u)
	}
}

// tokensChanged is called after some of the user's access tokens were
// deleted: this process forgets them at once, the others when the change
// reaches them.
func (s *Service) tokensChanged(userID id.UserID) {
	s.tokens.forget(userID)
	s.publishAccount(userID)
}

// publishAccount tells every process that facts about the user changed.
func (s *Service) publishAccount(userID id.UserID) {
	if s.opts.Notifier != nil {
		s.opts.Notifier.Publish(stream.Change{Stream: stream.Accounts, Users: []id.UserID{userID}})
	}
}

// Restrictions reports whether an account is suspended or locked, for
// those who act as it without its access token (appservices masquerading,
// batch send senders: core/bridging). Unknown users have none.
func (s *Service) Restrictions(ctx context.Context, userID id.UserID) (suspended, locked bool, err error) {
	r, err := s.restrictionsOf(ctx, userID)
	return r.suspended, r.locked, err
}

// refuseLocked stops locked accounts from getting new sessions.
func (s *Service) refuseLocked(ctx context.Context, userID id.UserID) error {
	_, locked, err := s.store.AccountRestrictions(ctx, userID)
	if err != nil {
		return internal("account restrictions", err)
	}
	if locked {
		return types.ErrLocked
	}
	return nil
}

// Restriction names what admins can put on an account.
type Restriction int

const (
	Suspension Restriction = iota
	Lock
)

// moderatedAccount checks that an admin asks (before looking the target up,
// so that nobody else learns who exists) about a local, active account, and
// returns it.
func (s *Service) moderatedAccount(ctx context.Context, admin, target id.UserID) (*Account, error) {
	if ok, err := s.IsAdmin(ctx, admin); err != nil {
		return nil, err
	} else if !ok {
		return nil, types.Forbidden("Only server administrators may do this")
	}
	if target.Homeserver() != s.opts.ServerName {
		return nil, types.InvalidParam("User does not belong to this server")
	}
	acc, err := s.store.GetAccount(ctx, target)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && acc.Deactivated) {
		return nil, types.NotFound("User not found")
	} else if err != nil {
		return nil, internal("get account", err)
	}
	return acc, nil
}

// moderationTarget checks who may restrict whom: moderatedAccount's rules,
// and not oneself, not other admins.
func (s *Service) moderationTarget(ctx context.Context, admin, target id.UserID) error {
	acc, err := s.moderatedAccount(ctx, admin, target)
	if err != nil {
		return err
	}
	if target == admin {
		return types.Forbidden("You cannot restrict your own account")
	}
	if acc.IsAdmin {
		return types.Forbidden("You cannot restrict another administrator")
	}
	return nil
}

// Restricted reports whether an account is suspended or locked
// (GET /v1/admin/{suspend,lock}/{userId}).
func (s *Service) Restricted(ctx context.Context, admin, target id.UserID, r Restriction) (bool, error) {
	if _, err := s.moderatedAccount(ctx, admin, target); err != nil {
		return false, err
	}
	suspended, locked, err := s.store.AccountRestrictions(ctx, target)
	if err != nil {
		return false, internal("account restrictions", err)
	}
	if r == Lock {
		return locked, nil
	}
	return suspended, nil
}

// Restrict suspends or locks an account, or lifts that
// (PUT /v1/admin/{suspend,lock}/{userId}). Sessions are kept: a locked
// client keeps its state and learns of the lock from M_USER_LOCKED.
func (s *Service) Restrict(ctx context.Context, admin, target id.UserID, r Restriction, on bool) error {
	if err := s.moderationTarget(ctx, admin, target); err != nil {
		return err
	}
	s.restrictMu.Lock()
	defer s.restrictMu.Unlock()
	var err error
	if r == Lock {
		err = s.store.SetAccountLocked(ctx, target, on)
	} else {
		err = s.store.SetAccountSuspended(ctx, target, on)
	}
	if err != nil {
		return internal("restrict account", err)
	}
	// Every process (this one too) forgets the flags it cached and reads
	// what is stored from the next request on.
	s.restrictions.Forget(target)
	s.publishAccount(target)
	return nil
}

// localAccount checks that the target is a local account that exists (an
// admin endpoint's user; admin rights are the caller's to check).
func (s *Service) localAccount(ctx context.Context, target id.UserID) error {
	if target.Homeserver() != s.opts.ServerName {
		return types.InvalidParam("Only local users can be managed")
	}
	if _, err := s.store.GetAccount(ctx, target); errors.Is(err, storage.ErrNotFound) {
		return types.NotFound("User not found")
	} else if err != nil {
		return internal("get account", err)
	}
	return nil
}

// accountChanged makes every process read the account's flags anew.
func (s *Service) accountChanged(target id.UserID) {
	s.restrictions.Forget(target)
	s.tokens.forget(target)
	s.publishAccount(target)
}

// SetShadowBanned shadow-bans a local account or lifts it
// (POST/DELETE /_synapse/admin/v1/users/{userId}/shadow_ban): what it sends
// seems to succeed but reaches nobody.
func (s *Service) SetShadowBanned(ctx context.Context, target id.UserID, banned bool) error {
	if err := s.localAccount(ctx, target); err != nil {
		return err
	}
	if err := s.store.SetShadowBanned(ctx, target, banned); err != nil {
		return internal("shadow ban", err)
	}
	s.accountChanged(target)
	return nil
}

// ShadowBanned reports whether an account is shadow-banned.
func (s *Service) ShadowBanned(ctx context.Context, target id.UserID) (bool, error) {
	r, err := s.restrictionsOf(ctx, target)
	return r.shadowBanned, err
}

// RateOverride replaces the server's message rate limit for one account
// (an admin's): PerSecond actions a second, Burst at once; a PerSecond of
// 0 is no limit.
type RateOverride = storage.RateOverride

// RateOverride is a local account's rate-limit override (nil: none).
func (s *Service) RateOverride(ctx context.Context, target id.UserID) (*RateOverride, error) {
	if err := s.localAccount(ctx, target); err != nil {
		return nil, err
	}
	_, o, err := s.store.AccountLimits(ctx, target)
	if err != nil {
		return nil, internal("account limits", err)
	}
	return o, nil
}

// SetRateOverride sets (nil: removes) a local account's rate-limit
// override; the message limiter honours it from the account's next send.
func (s *Service) SetRateOverride(ctx context.Context, target id.UserID, o *RateOverride) error {
	if err := s.localAccount(ctx, target); err != nil {
		return err
	}
	if o != nil && (o.PerSecond < 0 || o.Burst < 0) {
		return types.InvalidParam("messages_per_second and burst_count must be positive integers")
	}
	if err := s.store.SetRateOverride(ctx, target, o); err != nil {
		return internal("rate-limit override", err)
	}
	s.accountChanged(target)
	return nil
}

// AllAccountData is every account data entry of a user, global and per
// room (GET /_synapse/admin/v1/users/{userId}/accountdata).
func (s *Service) AllAccountData(ctx context.Context, target id.UserID) ([]*storage.AccountDataEntry, error) {
	if err := s.localAccount(ctx, target); err != nil {
		return nil, err
	}
	entries, err := s.store.AccountDataSince(ctx, target, 0)
	if err != nil {
		return nil, internal("account data", err)
	}
	return entries, nil
}
