package outbound

// Remote implements core/rooms.RemoteRooms with the signing client: the
// reads (events, state, auth chains, history, missing events) and the
// membership handshakes core makes with other servers. Each call is one
// request (two for send_join and send_leave when a server has only the
// v1 API); their failures become *rooms.RemoteError, so that core tells a
// refusal (the server's Matrix error) from a server it could not reach.

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
)

// Remote reaches other servers for core/rooms.
type Remote struct{ Client *federation.Client }

var _ rooms.RemoteRooms = Remote{}

// remoteError turns the client's error into a *rooms.RemoteError.
func remoteError(server string, err error) error {
	if err == nil {
		return nil
	}
	re := &rooms.RemoteError{Server: server, Err: err}
	var he mautrix.HTTPError
	if errors.As(err, &he) {
		if he.Response != nil && he.WrappedError == nil {
			re.Status = he.Response.StatusCode
		}
		if he.RespError != nil {
			re.Code, re.Message = he.RespError.ErrCode, he.RespError.Err
		}
		if re.Message == "" {
			re.Message = he.Error()
		}
	}
	return re
}

// unrecognised reports whether a server lacks an endpoint (404 or 405
// M_UNRECOGNIZED, or a bare 404/405 from a server that predates it).
func unrecognised(err error) bool {
	var re *rooms.RemoteError
	if !errors.As(err, &re) {
		return false
	}
	return (re.Status == http.StatusNotFound || re.Status == http.StatusMethodNotAllowed) &&
		(re.Code == "" || re.Code == "M_UNRECOGNIZED")
}

func values(pdus []federation.PDU) []jsontext.Value {
	out := make([]jsontext.Value, len(pdus))
	for i, p := range pdus {
		out[i] = jsontext.Value(p)
	}
	return out
}

// Event implements rooms.RemoteRooms.
func (r Remote) Event(ctx context.Context, server string, eventID id.EventID) (jsontext.Value, error) {
	resp, err := r.Client.GetEvent(ctx, server, eventID)
	if err != nil {
		return nil, remoteError(server, err)
	}
	if len(resp.PDUs) != 1 {
		return nil, &rooms.RemoteError{Server: server, Status: http.StatusOK, Message: fmt.Sprintf(
			"answered /event/%s with %d events", eventID, len(resp.PDUs))}
	}
	return jsontext.Value(resp.PDUs[0]), nil
}

// MissingEvents implements rooms.RemoteRooms.
func (r Remote) MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID,
	limit int, minDepth int64) ([]jsontext.Value, error) {
	if earliest == nil {
		earliest = []id.EventID{}
	}
	resp, err := r.Client.GetMissingEvents(ctx, &federation.ReqGetMissingEvents{ServerName: server, RoomID: roomID,
		EarliestEvents: earliest, LatestEvents: latest, Limit: limit, MinDepth: int(minDepth)})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return values(resp.Events), nil
}

// StateAt implements rooms.RemoteRooms.
func (r Remote) StateAt(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (*rooms.RemoteState, error) {
	resp, err := r.Client.GetState(ctx, server, roomID, eventID)
	if err != nil {
		return nil, remoteError(server, err)
	}
	return &rooms.RemoteState{State: values(resp.PDUs), AuthChain: values(resp.AuthChain)}, nil
}

// StateIDs implements rooms.RemoteRooms.
func (r Remote) StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]id.EventID, []id.EventID, error) {
	resp, err := r.Client.GetStateIDs(ctx, server, roomID, eventID)
	if err != nil {
		return nil, nil, remoteError(server, err)
	}
	return resp.PDUs, resp.AuthChain, nil
}

// AuthChain implements rooms.RemoteRooms.
func (r Remote) AuthChain(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, error) {
	resp, err := r.Client.GetEventAuthChain(ctx, server, roomID, eventID)
	if err != nil {
		return nil, remoteError(server, err)
	}
	return values(resp.AuthChain), nil
}

// Backfill implements rooms.RemoteRooms.
func (r Remote) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error) {
	resp, err := r.Client.Backfill(ctx, &federation.ReqBackfill{ServerName: server, RoomID: roomID, Limit: limit,
		BackfillFrom: from})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return values(resp.PDUs), nil
}

// MakeJoin implements rooms.RemoteRooms.
func (r Remote) MakeJoin(ctx context.Context, server string, roomID id.RoomID, user id.UserID,
	versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	resp, err := r.Client.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: roomID, UserID: user, Via: server,
		SupportedVersions: versions})
	if err != nil {
		return "", nil, remoteError(server, err)
	}
	return templateVersion(resp), jsontext.Value(resp.Event), nil
}

// templateVersion is a make_ answer's room version: "1" when it names none
// (servers from before room versions).
func templateVersion(resp *federation.RespMakeJoin) id.RoomVersion {
	if resp.RoomVersion == "" {
		return id.RoomV1
	}
	return resp.RoomVersion
}

// sendJoinAnswer is the body of send_join's answer (the v1 API wraps it
// as [200, {…}]).
type sendJoinAnswer struct {
	State     []jsontext.Value `json:"state"`
	AuthChain []jsontext.Value `json:"auth_chain"`
	Event     jsontext.Value   `json:"event,omitempty"`
}

// SendJoin implements rooms.RemoteRooms: v2 (full state, not
// omit_members), else v1.
func (r Remote) SendJoin(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID,
	join jsontext.Value) (*rooms.RemoteJoin, error) {
	var ans sendJoinAnswer
	_, _, err := r.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodPut,
		Path: federation.URLPath{"v2", "send_join", roomID, eventID}, Query: url.Values{"omit_members": {"false"}},
		Authenticate: true, RequestJSON: join, ResponseJSON: &ans})
	if err = remoteError(server, err); unrecognised(err) {
		var v1 []jsontext.Value
		_, _, err = r.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodPut,
			Path: federation.URLPath{"v1", "send_join", roomID, eventID}, Authenticate: true, RequestJSON: join,
			ResponseJSON: &v1})
		if err = remoteError(server, err); err == nil {
			if len(v1) != 2 || json.Unmarshal(v1[1], &ans) != nil {
				err = &rooms.RemoteError{Server: server, Status: http.StatusOK, Message: "send_join v1 answer is not [200, {…}]"}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return &rooms.RemoteJoin{RemoteState: rooms.RemoteState{State: ans.State, AuthChain: ans.AuthChain}, Event: ans.Event}, nil
}

// MakeLeave implements rooms.RemoteRooms.
func (r Remote) MakeLeave(ctx context.Context, server string, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsontext.Value, error) {
	resp, err := r.Client.MakeLeave(ctx, &federation.ReqMakeLeave{RoomID: roomID, UserID: user, Via: server})
	if err != nil {
		return "", nil, remoteError(server, err)
	}
	return templateVersion(resp), jsontext.Value(resp.Event), nil
}

// SendLeave implements rooms.RemoteRooms: v2, else v1.
func (r Remote) SendLeave(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, leave jsontext.Value) error {
	err := remoteError(server, r.Client.SendLeave(ctx, &federation.ReqSendLeave{RoomID: roomID, EventID: eventID,
		Event: federation.PDU(leave), Via: server}))
	if unrecognised(err) {
		_, _, err = r.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodPut,
			Path: federation.URLPath{"v1", "send_leave", roomID, eventID}, Authenticate: true, RequestJSON: leave})
		err = remoteError(server, err)
	}
	return err
}

// MakeKnock implements rooms.RemoteRooms.
func (r Remote) MakeKnock(ctx context.Context, server string, roomID id.RoomID, user id.UserID,
	versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	resp, err := r.Client.MakeKnock(ctx, &federation.ReqMakeKnock{RoomID: roomID, UserID: user, Via: server,
		SupportedVersions: versions})
	if err != nil {
		return "", nil, remoteError(server, err)
	}
	return templateVersion(resp), jsontext.Value(resp.Event), nil
}

// SendKnock implements rooms.RemoteRooms.
func (r Remote) SendKnock(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, knock jsontext.Value) ([]jsontext.Value, error) {
	resp, err := r.Client.SendKnock(ctx, &federation.ReqSendKnock{RoomID: roomID, EventID: eventID,
		Event: federation.PDU(knock), Via: server})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return values(resp.KnockRoomState), nil
}

// Invite implements rooms.RemoteRooms (the v2 API; v1 is for servers that
// predate room versions, which no room this server makes or joins needs).
func (r Remote) Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, rv id.RoomVersion,
	invite jsontext.Value, stripped []jsontext.Value) (jsontext.Value, error) {
	st := make([]federation.PDU, len(stripped))
	for i, s := range stripped {
		st[i] = federation.PDU(s)
	}
	var resp federation.RespSendInvite
	_, _, err := r.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodPut,
		Path: federation.URLPath{"v2", "invite", roomID, eventID}, Authenticate: true,
		RequestJSON:  &federation.ReqSendInvite{Event: federation.PDU(invite), InviteRoomState: st, RoomVersion: rv},
		ResponseJSON: &resp})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return jsontext.Value(resp.Event), nil
}

// QueryAlias implements rooms.RemoteRooms.
func (r Remote) QueryAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error) {
	_, server, _ := id.ParseCommonIdentifier(alias)
	resp, err := r.Client.QueryDirectory(ctx, alias)
	if err != nil {
		return "", nil, remoteError(server, err)
	}
	if resp.RoomID == "" {
		return "", nil, &rooms.RemoteError{Server: server, Status: http.StatusOK, Message: "directory answer without room_id"}
	}
	return resp.RoomID, resp.Servers, nil
}
