package keys

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// BackupVersionInfo is the answer of GET /room_keys/version[/{version}].
type BackupVersionInfo struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// BackupSession is one session's entry in /room_keys/keys.
type BackupSession struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// BackupRoom is a room's sessions.
type BackupRoom struct {
	Sessions map[string]*BackupSession `json:"sessions"`
}

// BackupCounts is the answer of writes to /room_keys/keys.
type BackupCounts struct {
	Etag  string `json:"etag"`
	Count int64  `json:"count"`
}

const maxBackupSessions = 10000

func unknownVersion(version string) error {
	return types.NotFound("Unknown backup version %s", version)
}

func checkAuthData(algorithm string, authData json.RawMessage) error {
	if algorithm == "" {
		return types.MissingParam("algorithm is required")
	}
	if isNull(authData) {
		return types.MissingParam("auth_data is required")
	}
	if t := authData; len(t) == 0 || t[0] != '{' {
		return types.BadJSON("auth_data must be an object")
	}
	if len(authData) > 64*1024 {
		return types.TooLarge("auth_data is too large")
	}
	return nil
}

// CreateBackupVersion creates a backup version and returns it.
func (s *Service) CreateBackupVersion(ctx context.Context, user id.UserID, algorithm string, authData json.RawMessage) (string, error) {
	if err := checkAuthData(algorithm, authData); err != nil {
		return "", err
	}
	v, err := s.store.CreateBackupVersion(ctx, user, algorithm, authData)
	if err != nil {
		return "", internal("create backup version", err)
	}
	return v, nil
}

// BackupVersion describes a version ("" for the current one).
func (s *Service) BackupVersion(ctx context.Context, user id.UserID, version string) (*BackupVersionInfo, error) {
	v, err := s.store.GetBackupVersion(ctx, user, version)
	if errors.Is(err, storage.ErrNotFound) {
		if version == "" {
			return nil, types.NotFound("No current backup version")
		}
		return nil, unknownVersion(version)
	} else if err != nil {
		return nil, internal("get backup version", err)
	}
	n, err := s.store.CountBackupKeys(ctx, user, v.Version)
	if err != nil {
		return nil, internal("count backup keys", err)
	}
	return &BackupVersionInfo{Algorithm: v.Algorithm, AuthData: v.AuthData, Count: n,
		Etag: strconv.FormatInt(v.Etag, 10), Version: v.Version}, nil
}

// UpdateBackupVersion replaces a version's auth data; the algorithm cannot change.
func (s *Service) UpdateBackupVersion(ctx context.Context, user id.UserID, version, bodyVersion, algorithm string, authData json.RawMessage) error {
	if err := checkAuthData(algorithm, authData); err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != version {
		return types.InvalidParam("version in the body does not match the path")
	}
	v, err := s.store.GetBackupVersion(ctx, user, version)
	if errors.Is(err, storage.ErrNotFound) {
		return unknownVersion(version)
	} else if err != nil {
		return internal("get backup version", err)
	}
	if v.Algorithm != algorithm {
		return types.InvalidParam("The algorithm of a backup cannot change")
	}
	if err := s.store.UpdateBackupVersion(ctx, user, version, authData); err != nil {
		return internal("update backup version", err)
	}
	return nil
}

// DeleteBackupVersion deletes a version and its keys.
func (s *Service) DeleteBackupVersion(ctx context.Context, user id.UserID, version string) error {
	err := s.store.DeleteBackupVersion(ctx, user, version)
	if errors.Is(err, storage.ErrNotFound) {
		return unknownVersion(version)
	} else if err != nil {
		return internal("delete backup version", err)
	}
	return nil
}

// currentVersion checks that version is the user's current backup.
func (s *Service) currentVersion(ctx context.Context, user id.UserID, version string) error {
	if version == "" {
		return types.MissingParam("version is required")
	}
	cur, err := s.store.GetBackupVersion(ctx, user, "")
	if errors.Is(err, storage.ErrNotFound) {
		return unknownVersion(version)
	} else if err != nil {
		return internal("get backup version", err)
	}
	if cur.Version != version {
		if _, err := s.store.GetBackupVersion(ctx, user, version); errors.Is(err, storage.ErrNotFound) {
			return unknownVersion(version)
		}
		return types.NewError(http.StatusForbidden, CodeWrongRoomKeysVersion, "Wrong backup version.").
			With("current_version", cur.Version)
	}
	return nil
}

// better reports whether the new session replaces the stored one: verified
// beats unverified, then the lower first message index, then the lower
// forwarded count.
func better(n, old *storage.BackupKey) bool {
	if n.IsVerified != old.IsVerified {
		return n.IsVerified
	}
	if n.FirstMessageIndex != old.FirstMessageIndex {
		return n.FirstMessageIndex < old.FirstMessageIndex
	}
	return n.ForwardedCount < old.ForwardedCount
}

func (s *Service) counts(ctx context.Context, user id.UserID, version string) (*BackupCounts, error) {
	v, err := s.store.GetBackupVersion(ctx, user, version)
	if err != nil {
		return nil, internal("get backup version", err)
	}
	n, err := s.store.CountBackupKeys(ctx, user, version)
	if err != nil {
		return nil, internal("count backup keys", err)
	}
	return &BackupCounts{Etag: strconv.FormatInt(v.Etag, 10), Count: n}, nil
}

// PutBackupKeys stores sessions in the current backup version, keeping a
// stored session when it is better than the new one.
func (s *Service) PutBackupKeys(ctx context.Context, user id.UserID, version string, rooms map[id.RoomID]*BackupRoom) (*BackupCounts, error) {
	if err := s.currentVersion(ctx, user, version); err != nil {
		return nil, err
	}
	var keys []*storage.BackupKey
	for roomID, r := range rooms {
		if roomID == "" || r == nil {
			return nil, types.InvalidParam("Malformed room %q", roomID)
		}
		for sessionID, sess := range r.Sessions {
			if sessionID == "" || sess == nil {
				return nil, types.InvalidParam("Malformed session %q", sessionID)
			}
			if sess.FirstMessageIndex == nil || sess.ForwardedCount == nil || sess.IsVerified == nil || isNull(sess.SessionData) {
				return nil, types.MissingParam("Session %s lacks first_message_index, forwarded_count, is_verified or session_data", sessionID)
			}
			if *sess.FirstMessageIndex < 0 || *sess.ForwardedCount < 0 {
				return nil, types.InvalidParam("Session %s has negative counts", sessionID)
			}
			if sess.SessionData[0] != '{' {
				return nil, types.BadJSON("session_data must be an object")
			}
			keys = append(keys, &storage.BackupKey{UserID: user, Version: version, RoomID: roomID, SessionID: sessionID,
				FirstMessageIndex: *sess.FirstMessageIndex, ForwardedCount: *sess.ForwardedCount,
				IsVerified: *sess.IsVerified, SessionData: sess.SessionData})
		}
	}
	if len(keys) > maxBackupSessions {
		return nil, types.TooLarge("At most %d sessions per request", maxBackupSessions)
	}
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		for _, k := range keys {
			old, err := s.store.BackupKeys(ctx, user, version, k.RoomID, k.SessionID)
			if err != nil {
				return err
			}
			if len(old) > 0 && !better(k, old[0]) {
				continue
			}
			if err := s.store.PutBackupKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal("store backup keys", err)
	}
	return s.counts(ctx, user, version)
}

// requireVersion checks that version names one of the user's backups.
func (s *Service) requireVersion(ctx context.Context, user id.UserID, version string) error {
	if version == "" {
		return types.MissingParam("version is required")
	}
	if _, err := s.store.GetBackupVersion(ctx, user, version); errors.Is(err, storage.ErrNotFound) {
		return unknownVersion(version)
	} else if err != nil {
		return internal("get backup version", err)
	}
	return nil
}

// BackupKeys reads sessions of a version: all rooms (roomID ""), one room,
// or one session (M_NOT_FOUND if missing).
func (s *Service) BackupKeys(ctx context.Context, user id.UserID, version string, roomID id.RoomID, sessionID string) (map[id.RoomID]*BackupRoom, error) {
	if err := s.requireVersion(ctx, user, version); err != nil {
		return nil, err
	}
	keys, err := s.store.BackupKeys(ctx, user, version, roomID, sessionID)
	if err != nil {
		return nil, internal("read backup keys", err)
	}
	if sessionID != "" && len(keys) == 0 {
		return nil, types.NotFound("No such session in the backup")
	}
	out := map[id.RoomID]*BackupRoom{}
	for _, k := range keys {
		r := out[k.RoomID]
		if r == nil {
			r = &BackupRoom{Sessions: map[string]*BackupSession{}}
			out[k.RoomID] = r
		}
		fmi, fc, v := k.FirstMessageIndex, k.ForwardedCount, k.IsVerified
		r.Sessions[k.SessionID] = &BackupSession{FirstMessageIndex: &fmi, ForwardedCount: &fc, IsVerified: &v, SessionData: k.SessionData}
	}
	return out, nil
}

// DeleteBackupKeys deletes sessions of a version.
func (s *Service) DeleteBackupKeys(ctx context.Context, user id.UserID, version string, roomID id.RoomID, sessionID string) (*BackupCounts, error) {
	if err := s.requireVersion(ctx, user, version); err != nil {
		return nil, err
	}
	err := s.store.DeleteBackupKeys(ctx, user, version, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, unknownVersion(version)
	} else if err != nil {
		return nil, internal("delete backup keys", err)
	}
	return s.counts(ctx, user, version)
}
