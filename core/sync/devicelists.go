package sync

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
)

// DeviceLists is what /sync needs of the end-to-end encryption service
// (core/keys); without it the answer has no device_lists or key counts.
type DeviceLists interface {
	// DeviceListUpdates lists the users whose devices changed in (since,
	// upto] and who share a room with user, and those who no longer do.
	DeviceListUpdates(ctx context.Context, user id.UserID, since, upto stream.Positions) (changed, left []id.UserID, err error)
	OneTimeKeyCounts(ctx context.Context, user id.UserID, deviceID id.DeviceID) (map[string]int64, error)
	UnusedFallbackKeyTypes(ctx context.Context, user id.UserID, deviceID id.DeviceID) ([]string, error)
}

// Option configures the service.
type Option func(*Service)

// WithDeviceLists adds device lists and one-time key counts to /sync.
func WithDeviceLists(d DeviceLists) Option {
	return func(s *Service) { s.deviceLists = d }
}

// DeviceListsSection is the device_lists section of /sync.
type DeviceListsSection struct {
	Changed []id.UserID `json:"changed,omitempty"`
	Left    []id.UserID `json:"left,omitempty"`
}

// skipMemberless moves since's event position up to upto's when no
// membership changed in between: then membership cannot have changed who
// shares a room with whom, and device list updates need not look at the
// events (most syncs follow messages only).
func (s *Service) skipMemberless(since, upto stream.Positions) stream.Positions {
	if since[stream.Events] > 0 && !s.rooms.MayHaveMemberEventsAfter(since[stream.Events]) {
		since[stream.Events] = max(since[stream.Events], upto[stream.Events])
	}
	return since
}

// addDeviceLists fills the device_lists section (incremental syncs only)
// and the syncing device's one-time key counts and fallback key types.
func (s *Service) addDeviceLists(ctx context.Context, req *Request, resp *Response, since, upto stream.Positions, initial bool) error {
	if s.deviceLists == nil {
		return nil
	}
	since = s.skipMemberless(since, upto)
	if !initial && (upto[stream.DeviceLists] > since[stream.DeviceLists] || upto[stream.Events] > since[stream.Events]) {
		changed, left, err := s.deviceLists.DeviceListUpdates(ctx, req.User, since, upto)
		if err != nil {
			return err
		}
		if len(changed) > 0 || len(left) > 0 {
			resp.DeviceLists = &DeviceListsSection{Changed: changed, Left: left}
		}
	}
	if req.DeviceID == "" {
		return nil
	}
	device := req.DeviceID // Request is not typed yet
	counts, err := s.deviceLists.OneTimeKeyCounts(ctx, req.User, device)
	if err != nil {
		return err
	}
	resp.DeviceOneTimeKeysCount = counts
	types, err := s.deviceLists.UnusedFallbackKeyTypes(ctx, req.User, device)
	if err != nil {
		return err
	}
	if types == nil {
		types = []string{}
	}
	resp.DeviceUnusedFallbackKeyTypes = types
	return nil
}

// slidingE2EE fills sliding sync's e2ee extension (MSC3884) for the device:
// device list updates since the connection's last answer (none on its
// first), one-time key counts and unused fallback key types.
func (s *Service) slidingE2EE(ctx context.Context, user id.UserID, device id.DeviceID, since, upto stream.Positions, initial bool, res *e2eeResult) error {
	if s.deviceLists == nil {
		return nil
	}
	since = s.skipMemberless(since, upto)
	if !initial && (upto[stream.DeviceLists] > since[stream.DeviceLists] || upto[stream.Events] > since[stream.Events]) {
		changed, left, err := s.deviceLists.DeviceListUpdates(ctx, user, since, upto)
		if err != nil {
			return err
		}
		res.DeviceLists.Changed = append(res.DeviceLists.Changed, changed...)
		res.DeviceLists.Left = append(res.DeviceLists.Left, left...)
	}
	if device == "" {
		return nil
	}
	counts, err := s.deviceLists.OneTimeKeyCounts(ctx, user, device)
	if err != nil {
		return err
	}
	for alg, n := range counts {
		res.OneTimeKeysCount[alg] = int(n)
	}
	types, err := s.deviceLists.UnusedFallbackKeyTypes(ctx, user, device)
	if err != nil {
		return err
	}
	res.UnusedFallbackKeyTypes = append(res.UnusedFallbackKeyTypes, types...)
	return nil
}
