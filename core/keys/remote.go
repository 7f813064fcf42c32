package keys

// Keys of other servers' users (server-server API, "End-to-End
// Encryption"): /keys/query and /keys/claim ask each server of the users
// asked for, all at once, and merge the answers; a server that does not
// answer in time is a failure of the answer, not of the request. What a
// server answers for users that are not its own is dropped.

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// remoteTimeout bounds the wait for other servers (the client-server
// API's default timeout of /keys/query and /keys/claim).
const remoteTimeout = 10 * time.Second

// RemoteKeys asks another server for its users' keys (federation/outbound
// implements it).
type RemoteKeys interface {
	// QueryKeys is POST /_matrix/federation/v1/user/keys/query: the device
	// keys (all of a user's when the list is empty) and cross-signing keys.
	QueryKeys(ctx context.Context, server string, want map[id.UserID][]id.DeviceID) (*RemoteKeysAnswer, error)
	// ClaimKeys is POST /_matrix/federation/v1/user/keys/claim: one key of
	// the algorithm for each device.
	ClaimKeys(ctx context.Context, server string, want map[id.UserID]map[id.DeviceID]string) (
		map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error)
	// UserDevices is GET /_matrix/federation/v1/user/devices/{userId}: the
	// user's whole device list with the stream ID its updates follow.
	UserDevices(ctx context.Context, server string, user id.UserID) (*RemoteUserDevices, error)
}

// RemoteKeysAnswer is a server's answer to a key query.
type RemoteKeysAnswer struct {
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
	SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
}

func remoteFailure(err error) map[string]any {
	return map[string]any{"errcode": "M_UNKNOWN", "error": err.Error()}
}

// byServer groups the remote users of want by server.
func byServer[V any](s *Service, want map[id.UserID]V) map[string]map[id.UserID]V {
	out := map[string]map[id.UserID]V{}
	for u, v := range want {
		if s.isLocal(u) {
			continue
		}
		server := u.Homeserver()
		if out[server] == nil {
			out[server] = map[id.UserID]V{}
		}
		out[server][u] = v
	}
	return out
}

// queryRemote adds the keys of the remote users of want to resp: from
// the copies of their device lists that can be trusted, else from their
// servers (keeping a copy of the lists of users in a room with ours).
func (s *Service) queryRemote(ctx context.Context, want map[id.UserID][]id.DeviceID, resp *QueryResponse) {
	all := byServer(s, want)
	if len(all) == 0 {
		return
	}
	if s.opts.Remote == nil {
		for server := range all {
			resp.Failures[server] = map[string]any{"errcode": "M_UNKNOWN", "error": "Federation is not available"}
		}
		return
	}
	want, keep, fetched := s.cachedRemote(ctx, want, resp)
	servers := byServer(s, want)
	if len(servers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans, err := s.opts.Remote.QueryKeys(ctx, server, users)
			if err == nil {
				// Only lists of the users asked for: a server answers for its own.
				mine := map[id.UserID]int64{}
				for u := range users {
					if mark, ok := keep[u]; ok {
						mine[u] = mark
					}
				}
				s.keepRemote(ctx, ans, mine, fetched)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.InfoContext(ctx, "remote key query failed", "server", server, "err", err)
				resp.Failures[server] = remoteFailure(err)
				return
			}
			for u, devs := range ans.DeviceKeys {
				if _, asked := users[u]; !asked {
					continue
				}
				keep := map[id.DeviceID]json.RawMessage{}
				for d, k := range devs {
					if ws := users[u]; len(ws) > 0 && !contains(ws, d) {
						continue
					}
					// Keys must say whose they are: the client checks
					// their signatures against what they say.
					if gjson.GetBytes(k, "user_id").Str != string(u) || gjson.GetBytes(k, "device_id").Str != string(d) {
						continue
					}
					keep[d] = k
				}
				resp.DeviceKeys[u] = keep
			}
			for u, k := range ans.MasterKeys {
				if _, asked := users[u]; asked {
					resp.MasterKeys[u] = k
				}
			}
			for u, k := range ans.SelfSigningKeys {
				if _, asked := users[u]; asked {
					resp.SelfSigningKeys[u] = k
				}
			}
		}()
	}
	wg.Wait()
}

// claimRemote adds keys claimed for the remote users of want to out.
func (s *Service) claimRemote(ctx context.Context, want map[id.UserID]map[id.DeviceID]string,
	out map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, failures map[string]any) {
	servers := byServer(s, want)
	if len(servers) == 0 {
		return
	}
	if s.opts.Remote == nil {
		for server := range servers {
			failures[server] = map[string]any{"errcode": "M_UNKNOWN", "error": "Federation is not available"}
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.opts.Remote.ClaimKeys(ctx, server, users)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.InfoContext(ctx, "remote key claim failed", "server", server, "err", err)
				failures[server] = remoteFailure(err)
				return
			}
			for u, devs := range got {
				for d, k := range devs {
					if _, asked := users[u][d]; !asked {
						continue
					}
					if out[u] == nil {
						out[u] = map[id.DeviceID]map[string]json.RawMessage{}
					}
					out[u][d] = k
				}
			}
		}()
	}
	wg.Wait()
}

func contains(ds []id.DeviceID, d id.DeviceID) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// RemoteDevice is one of a user's devices as other servers see it
// (GET /_matrix/federation/v1/user/devices/{userId}).
type RemoteDevice struct {
	DeviceID    id.DeviceID     `json:"device_id"`
	Keys        json.RawMessage `json:"keys,omitempty"`
	DisplayName string          `json:"device_display_name,omitempty"`
}

// UserDevices is what another server is told of a local user's devices:
// each with its keys and name, the cross-signing keys others may see, and
// a stream ID that grows when the list changes.
func (s *Service) UserDevices(ctx context.Context, user id.UserID) (streamID int64, devices []RemoteDevice,
	master, selfSigning json.RawMessage, err error) {
	if !s.isLocal(user) {
		return 0, nil, nil, nil, types.InvalidParam("%s is not a user of this server", user)
	}
	if streamID, err = s.store.MaxDeviceListPos(ctx); err != nil {
		return 0, nil, nil, nil, internal("device list position", err)
	}
	devs, err := s.store.ListDevices(ctx, user)
	if err != nil {
		return 0, nil, nil, nil, internal("list devices", err)
	}
	resp, err := s.Query(ctx, "", map[id.UserID][]id.DeviceID{user: nil})
	if err != nil {
		return 0, nil, nil, nil, err
	}
	devices = []RemoteDevice{}
	for _, d := range devs {
		devices = append(devices, RemoteDevice{DeviceID: d.DeviceID, Keys: resp.DeviceKeys[user][d.DeviceID],
			DisplayName: d.DisplayName})
	}
	return streamID, devices, resp.MasterKeys[user], resp.SelfSigningKeys[user], nil
}
