package push

import (
	"context"
	"errors"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Unstable error codes of MSC4306.
const (
	codeNotInThread               = "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"
	codeConflictingUnsubscription = "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"
)

var errNoThread = types.NotFound("Unknown thread")

func (s *Service) requireThreads() error {
	if !s.threads {
		return types.Unrecognized(http.StatusNotFound, "Thread subscriptions are not enabled on this server")
	}
	return nil
}

// threadRoot reads the root of a thread, which must be an event of the room.
func (s *Service) threadRoot(ctx context.Context, roomID id.RoomID, root id.EventID) (*storage.Event, error) {
	e, err := s.store.GetEvent(ctx, root)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (e.RoomID != roomID || e.Rejected)) {
		return nil, errNoThread
	}
	return e, err
}

// SubscribeThread subscribes a user to a thread (PUT …/thread/{root}/subscription),
// whose root the caller has checked they may see. cause is "" for a manual
// subscription, else the latest event that made the client subscribe
// automatically: it must be in the thread, and an unsubscription made
// after the server had it wins (409), so that a device coming back online
// does not resubscribe the user to a thread they left.
func (s *Service) SubscribeThread(ctx context.Context, user id.UserID, roomID id.RoomID, root, cause id.EventID) error {
	if err := s.requireThreads(); err != nil {
		return err
	}
	if _, err := s.threadRoot(ctx, roomID, root); err != nil {
		return err
	}
	var causePos int64
	if cause != "" {
		e, err := s.store.GetEvent(ctx, cause)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && (e.RoomID != roomID ||
			(cause != root && (e.RelType != "m.thread" || e.RelatesTo != root)))) {
			return types.NewError(http.StatusBadRequest, codeNotInThread, "The cause event is not in the thread")
		} else if err != nil {
			return err
		}
		causePos = e.StreamPos
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	cur, err := s.store.GetThreadSubscription(ctx, user, roomID, root)
	if errors.Is(err, storage.ErrNotFound) {
		cur = &storage.ThreadSubscription{UserID: user, RoomID: roomID, RootID: root}
	} else if err != nil {
		return err
	}
	if cause != "" {
		switch {
		case cur.Subscribed:
			return nil // subscribed already; a manual subscription stays manual
		case cur.UnsubscribedAt > 0 && causePos <= cur.UnsubscribedAt:
			return types.NewError(http.StatusConflict, codeConflictingUnsubscription,
				"The user unsubscribed from the thread after the cause event")
		}
	}
	cur.Subscribed, cur.Automatic = true, cause != ""
	return s.store.PutThreadSubscription(ctx, cur)
}

// UnsubscribeThread unsubscribes a user from a thread, remembering when.
func (s *Service) UnsubscribeThread(ctx context.Context, user id.UserID, roomID id.RoomID, root id.EventID) error {
	if err := s.requireThreads(); err != nil {
		return err
	}
	if _, err := s.threadRoot(ctx, roomID, root); err != nil {
		return err
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	pos, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return err
	}
	return s.store.PutThreadSubscription(ctx, &storage.ThreadSubscription{UserID: user, RoomID: roomID, RootID: root,
		UnsubscribedAt: pos})
}

// ThreadSubscription reports whether the user's subscription to a thread
// was automatic; 404 when they are not subscribed.
func (s *Service) ThreadSubscription(ctx context.Context, user id.UserID, roomID id.RoomID, root id.EventID) (bool, error) {
	if err := s.requireThreads(); err != nil {
		return false, err
	}
	cur, err := s.store.GetThreadSubscription(ctx, user, roomID, root)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !cur.Subscribed) {
		return false, types.NotFound("Not subscribed to the thread")
	} else if err != nil {
		return false, err
	}
	return cur.Automatic, nil
}
