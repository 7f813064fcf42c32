package rooms

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// AccountRestrictions reads whether a local account is suspended or locked
// (account moderation, spec v1.18); storage implements it, so every
// process reads what is stored. ErrNotFound: no such account.
type AccountRestrictions interface {
	AccountRestrictions(ctx context.Context, userID id.UserID) (suspended, locked bool, err error)
}

// restricted reports how the pipeline must treat a local sender: a locked
// account may do nothing, a suspended one only leave rooms and redact its
// own events (mayWhileSuspended says this action is one of those). The
// rules live here rather than in handlers, so HTTP, the CLI and the plugin
// host are held to them alike. It reports whether the account is suspended.
func (s *Service) restricted(ctx context.Context, sender id.UserID, mayWhileSuspended bool) (bool, error) {
	if s.opts.Restrictions == nil || sender.Homeserver() != s.opts.ServerName {
		return false, nil
	}
	suspended, locked, err := s.opts.Restrictions.AccountRestrictions(ctx, sender)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case locked:
		return false, types.ErrLocked
	case suspended && !mayWhileSuspended:
		return true, types.ErrSuspended
	}
	return suspended, nil
}
