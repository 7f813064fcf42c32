package keys

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// DehydratedDeviceRequest is PUT /dehydrated_device (MSC3814).
type DehydratedDeviceRequest struct {
	DeviceID                 id.DeviceID     `json:"device_id"`
	DeviceData               json.RawMessage `json:"device_data"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	UploadRequest
}

// dehydratedEventsLimit bounds one page of a dehydrated device's messages.
const dehydratedEventsLimit = 100

// PutDehydratedDevice creates the user's dehydrated device with its keys,
// replacing (and deleting) the previous one.
func (s *Service) PutDehydratedDevice(ctx context.Context, user id.UserID, req *DehydratedDeviceRequest) (id.DeviceID, error) {
	if req.DeviceID == "" {
		return "", types.MissingParam("device_id is required")
	}
	if len(req.DeviceID) > 255 {
		return "", types.InvalidParam("device_id is too long")
	}
	if isNull(req.DeviceData) {
		return "", types.MissingParam("device_data is required")
	}
	if req.DeviceData[0] != '{' {
		return "", types.BadJSON("device_data must be an object")
	}
	if len(req.DeviceData) > 64*1024 {
		return "", types.TooLarge("device_data is too large")
	}
	devs, err := s.store.ListDevices(ctx, user)
	if err != nil {
		return "", internal("list devices", err)
	}
	old, err := s.store.GetDehydratedDevice(ctx, user)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", internal("get dehydrated device", err)
	}
	for _, d := range devs {
		if d.DeviceID == req.DeviceID && (old == nil || old.DeviceID != req.DeviceID) {
			return "", types.InvalidParam("Device ID %s is in use", req.DeviceID)
		}
	}
	// The keys are checked before anything is written; a re-used ID starts afresh.
	up, err := s.prepareUpload(ctx, user, req.DeviceID, &req.UploadRequest)
	if err != nil {
		if old != nil && old.DeviceID == req.DeviceID {
			return "", types.InvalidParam("A new dehydrated device needs a new device ID")
		}
		return "", err
	}
	name := req.InitialDeviceDisplayName
	if name == "" {
		name = "Dehydrated device"
	}
	var pos int64
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		replaced, err := s.store.PutDehydratedDevice(ctx, &storage.DehydratedDevice{UserID: user, DeviceID: req.DeviceID,
			DeviceData: req.DeviceData})
		if err != nil {
			return err
		}
		if replaced != "" {
			if err := s.store.DeleteDevices(ctx, user, []id.DeviceID{replaced}); err != nil {
				return err
			}
			if err := s.store.DeleteDeviceKeys(ctx, user, []id.DeviceID{replaced}); err != nil {
				return err
			}
		}
		if err := s.store.UpsertDevice(ctx, &storage.Device{UserID: user, DeviceID: req.DeviceID, DisplayName: name,
			CreatedAt: time.Now().UnixMilli()}); err != nil {
			return err
		}
		if pos, err = s.applyUpload(ctx, up); err != nil {
			return err
		}
		if replaced != "" {
			pos, err = s.deviceListChanged(ctx, user, replaced)
		}
		return err
	})
	s.keyCounts.forget(user, req.DeviceID) // a replaced device's ID is never reused
	if err != nil {
		return "", internal("store dehydrated device", err)
	}
	s.publish(ctx, user, pos)
	return req.DeviceID, nil
}

// DehydratedDevice returns the user's dehydrated device.
func (s *Service) DehydratedDevice(ctx context.Context, user id.UserID) (*storage.DehydratedDevice, error) {
	d, err := s.store.GetDehydratedDevice(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("No dehydrated device available")
	} else if err != nil {
		return nil, internal("get dehydrated device", err)
	}
	return d, nil
}

// DeleteDehydratedDevice deletes the user's dehydrated device and its keys.
func (s *Service) DeleteDehydratedDevice(ctx context.Context, user id.UserID) (id.DeviceID, error) {
	var deviceID id.DeviceID
	var pos int64
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		d, err := s.store.DeleteDehydratedDevice(ctx, user)
		if err != nil {
			return err
		}
		deviceID = d.DeviceID
		if err := s.store.DeleteDevices(ctx, user, []id.DeviceID{d.DeviceID}); err != nil {
			return err
		}
		if err := s.store.DeleteDeviceKeys(ctx, user, []id.DeviceID{d.DeviceID}); err != nil {
			return err
		}
		pos, err = s.deviceListChanged(ctx, user, d.DeviceID)
		return err
	})
	if deviceID != "" {
		s.keyCounts.forget(user, deviceID)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return "", types.NotFound("No dehydrated device available")
	} else if err != nil {
		return "", internal("delete dehydrated device", err)
	}
	s.publish(ctx, user, pos)
	return deviceID, nil
}

// DehydratedEvents pages through the to-device messages of the user's
// dehydrated device: those after nextBatch ("" from the start), deleting
// those up to it.
func (s *Service) DehydratedEvents(ctx context.Context, user id.UserID, deviceID id.DeviceID, nextBatch string) ([]map[string]any, string, error) {
	d, err := s.store.GetDehydratedDevice(ctx, user)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && d.DeviceID != deviceID) {
		return nil, "", types.Forbidden("You may only fetch messages for your dehydrated device")
	} else if err != nil {
		return nil, "", internal("get dehydrated device", err)
	}
	var since int64
	if nextBatch != "" {
		var ok bool
		if since, ok = types.ParsePosition(nextBatch, false); !ok {
			return nil, "", types.InvalidParam("Invalid next_batch")
		}
		if err := s.store.AckToDevice(ctx, user, deviceID, since); err != nil {
			return nil, "", internal("ack to-device", err)
		}
	}
	upto, err := s.store.MaxToDevicePos(ctx)
	if err != nil {
		return nil, "", internal("to-device position", err)
	}
	msgs, err := s.store.ToDeviceSince(ctx, user, deviceID, since, upto, dehydratedEventsLimit)
	if err != nil {
		return nil, "", internal("read to-device", err)
	}
	out := make([]map[string]any, len(msgs))
	next := since
	for i, m := range msgs {
		out[i] = map[string]any{"sender": m.Sender, "type": m.Type, "content": m.Content}
		next = m.StreamPos
	}
	return out, strconv.FormatInt(next, 10), nil
}
