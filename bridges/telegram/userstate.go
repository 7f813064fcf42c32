package telegram

import (
	"context"

	"github.com/gotd/td/telegram/updates"
)

// updateState is the account's MTProto update state (pts, qts, date, seq,
// and each channel's pts), kept in the login so that a restarted plugin
// asks Telegram for what it missed (updates.getDifference,
// updates.getChannelDifference) instead of losing it.
type updateState struct {
	Pts  int `json:"pts"`
	Qts  int `json:"qts"`
	Date int `json:"date"`
	Seq  int `json:"seq"`
	// Channels are the channels' pts and access hashes, by channel ID.
	Channels map[int64]channelState `json:"channels,omitempty"`
}

type channelState struct {
	Pts        int   `json:"pts"`
	AccessHash int64 `json:"access_hash"`
}

// metaState is gotd's update state storage (and channel access hashes)
// over the login's metadata. Each change is saved: gotd moves the state on
// only after the updates before it were handled.
type metaState struct{ c *UserClient }

var (
	_ updates.StateStorage        = metaState{}
	_ updates.ChannelAccessHasher = metaState{}
)

// change edits the state and saves the login.
func (s metaState) change(ctx context.Context, fn func(st *updateState)) error {
	s.c.mu.Lock()
	meta := s.c.meta()
	if meta.Updates == nil {
		meta.Updates = &updateState{}
	}
	if meta.Updates.Channels == nil {
		meta.Updates.Channels = map[int64]channelState{}
	}
	fn(meta.Updates)
	s.c.mu.Unlock()
	if s.c.net.br == nil {
		return nil
	}
	return s.c.save(ctx)
}

func (s metaState) GetState(_ context.Context, _ int64) (updates.State, bool, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	st := s.c.meta().Updates
	if st == nil {
		return updates.State{}, false, nil
	}
	return updates.State{Pts: st.Pts, Qts: st.Qts, Date: st.Date, Seq: st.Seq}, true, nil
}

func (s metaState) SetState(ctx context.Context, _ int64, state updates.State) error {
	return s.change(ctx, func(st *updateState) {
		st.Pts, st.Qts, st.Date, st.Seq = state.Pts, state.Qts, state.Date, state.Seq
	})
}

func (s metaState) SetPts(ctx context.Context, _ int64, pts int) error {
	return s.change(ctx, func(st *updateState) { st.Pts = pts })
}

func (s metaState) SetQts(ctx context.Context, _ int64, qts int) error {
	return s.change(ctx, func(st *updateState) { st.Qts = qts })
}

func (s metaState) SetDate(ctx context.Context, _ int64, date int) error {
	return s.change(ctx, func(st *updateState) { st.Date = date })
}

func (s metaState) SetSeq(ctx context.Context, _ int64, seq int) error {
	return s.change(ctx, func(st *updateState) { st.Seq = seq })
}

func (s metaState) SetDateSeq(ctx context.Context, _ int64, date, seq int) error {
	return s.change(ctx, func(st *updateState) { st.Date, st.Seq = date, seq })
}

func (s metaState) GetChannelPts(_ context.Context, _, channelID int64) (int, bool, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if st := s.c.meta().Updates; st != nil {
		if ch, ok := st.Channels[channelID]; ok && ch.Pts != 0 {
			return ch.Pts, true, nil
		}
	}
	return 0, false, nil
}

func (s metaState) SetChannelPts(ctx context.Context, _, channelID int64, pts int) error {
	return s.change(ctx, func(st *updateState) {
		ch := st.Channels[channelID]
		ch.Pts = pts
		st.Channels[channelID] = ch
	})
}

func (s metaState) ForEachChannels(ctx context.Context, _ int64, f func(context.Context, int64, int) error) error {
	s.c.mu.Lock()
	chans := map[int64]int{}
	if st := s.c.meta().Updates; st != nil {
		for id, ch := range st.Channels {
			if ch.Pts != 0 {
				chans[id] = ch.Pts
			}
		}
	}
	s.c.mu.Unlock()
	for id, pts := range chans {
		if err := f(ctx, id, pts); err != nil {
			return err
		}
	}
	return nil
}

func (s metaState) SetChannelAccessHash(ctx context.Context, _, channelID, hash int64) error {
	s.c.mu.Lock()
	same := false
	if st := s.c.meta().Updates; st != nil {
		same = st.Channels[channelID].AccessHash == hash
	}
	s.c.mu.Unlock()
	if same {
		return nil
	}
	return s.change(ctx, func(st *updateState) {
		ch := st.Channels[channelID]
		ch.AccessHash = hash
		st.Channels[channelID] = ch
	})
}

func (s metaState) GetChannelAccessHash(_ context.Context, _, channelID int64) (int64, bool, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if st := s.c.meta().Updates; st != nil {
		if ch, ok := st.Channels[channelID]; ok && ch.AccessHash != 0 {
			return ch.AccessHash, true, nil
		}
	}
	if ch, ok := s.c.channels[channelID]; ok {
		return ch.AccessHash, true, nil
	}
	return 0, false, nil
}
