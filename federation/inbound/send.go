package inbound

// PUT /_matrix/federation/v1/send/{txnId}: transactions of PDUs and EDUs.
//
// Deduplication: a transaction is known by (origin, txnId) in memory, the
// last txnCacheSize of them, with the answer given; a retry while the
// first is in progress waits for it. Not persisted: after a restart a
// resent transaction is processed again, which is harmless for PDUs
// (Intake answers an event it stored before with its earlier fate) and
// for typing and receipts (idempotent).
//
// Bounds: each origin has one transaction in progress at a time (servers
// send them one by one; a second waits), and at most maxConcurrentTxns
// run over all origins, so one slow or hostile server holds one slot.

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/ephemeral"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/keys"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

const (
	txnCacheSize      = 4096
	maxConcurrentTxns = 32
	maxPDUsPerTxn     = 50
	maxEDUsPerTxn     = 100
	// missingDepth bounds the rounds of get_missing_events behind one PDU
	// (a fetched event may itself cite unknown events), missingFetches
	// the requests made for one PDU of a transaction in all.
	missingDepth    = 3
	missingFetches  = 5
	missingLimit    = 20
	txnWorkDeadline = 2 * time.Minute
)

// Ephemeral takes typing notifications, read receipts, presence and
// to-device messages of remote users (core/ephemeral.Service implements
// it); it checks their membership.
type Ephemeral interface {
	SetTyping(ctx context.Context, roomID id.RoomID, user id.UserID, typing bool, timeout time.Duration) error
	SetReceipt(ctx context.Context, roomID id.RoomID, user id.UserID, receiptType string, eventID id.EventID, threadID string) error
	SetRemotePresence(ctx context.Context, origin string, p *ephemeral.RemotePresence) error
	DeliverRemoteToDevice(ctx context.Context, origin string, sender id.UserID, evType, messageID string,
		messages map[id.UserID]map[string]stdjson.RawMessage) error
}

var _ Ephemeral = (*ephemeral.Service)(nil)

// maxPresencePush bounds the users of one m.presence EDU.
const maxPresencePush = 1000

type txnKey struct{ origin, txnID string }

type txnEntry struct {
	done chan struct{}
	resp any
}

// transactions deduplicates and bounds transaction work.
type transactions struct {
	mu      sync.Mutex
	entries map[txnKey]*txnEntry
	order   []txnKey
	origins map[string]*originSlot
	global  chan struct{}
}

// originSlot is one origin's slot; users counts those holding or waiting
// for it, so that an origin with none is forgotten.
type originSlot struct {
	ch    chan struct{}
	users int
}

func newTransactions() *transactions {
	return &transactions{entries: map[txnKey]*txnEntry{}, origins: map[string]*originSlot{},
		global: make(chan struct{}, maxConcurrentTxns)}
}

// begin finds the transaction's entry; first says whether the caller must
// process it (else it waits on entry.done).
func (t *transactions) begin(k txnKey) (e *txnEntry, first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[k]; ok {
		return e, false
	}
	e = &txnEntry{done: make(chan struct{})}
	t.entries[k] = e
	t.order = append(t.order, k)
	if len(t.order) > txnCacheSize {
		old := t.order[0]
		t.order = t.order[1:]
		if oe := t.entries[old]; oe != nil {
			select {
			case <-oe.done:
				delete(t.entries, old)
			default: // still running: kept until it ends
				t.order = append(t.order, old)
			}
		}
	}
	return e, true
}

// forget drops an entry whose work did not finish (the request ended), so
// that a retry processes the transaction.
func (t *transactions) forget(k txnKey, e *txnEntry) {
	t.mu.Lock()
	if t.entries[k] == e {
		delete(t.entries, k)
		if i := slices.Index(t.order, k); i >= 0 {
			t.order = slices.Delete(t.order, i, i+1)
		}
	}
	t.mu.Unlock()
	close(e.done)
}

// slot waits for origin's slot and a global one; release gives both back.
func (t *transactions) slot(ctx context.Context, origin string) (release func(), err error) {
	t.mu.Lock()
	o := t.origins[origin]
	if o == nil {
		o = &originSlot{ch: make(chan struct{}, 1)}
		t.origins[origin] = o
	}
	o.users++
	t.mu.Unlock()
	leave := func() {
		t.mu.Lock()
		if o.users--; o.users == 0 {
			delete(t.origins, origin)
		}
		t.mu.Unlock()
	}
	select {
	case o.ch <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	select {
	case t.global <- struct{}{}:
	case <-ctx.Done():
		<-o.ch
		leave()
		return nil, ctx.Err()
	}
	return func() { <-t.global; <-o.ch; leave() }, nil
}

type transaction struct {
	Origin string           `json:"origin"`
	PDUs   []jsontext.Value `json:"pdus"`
	EDUs   []struct {
		Type    string         `json:"edu_type"`
		Content jsontext.Value `json:"content"`
	} `json:"edus"`
}

// PUT /_matrix/federation/v1/send/{txnId}
func (a *API) send(c *gin.Context) {
	var txn transaction
	if err := httpx.DecodeJSON(c, &txn); err != nil {
		httpx.Fail(c, err)
		return
	}
	from := origin(c)
	if txn.Origin != "" && txn.Origin != from {
		httpx.Fail(c, types.Forbidden("transaction origin %s is not the sender %s", txn.Origin, from))
		return
	}
	if len(txn.PDUs) > maxPDUsPerTxn || len(txn.EDUs) > maxEDUsPerTxn {
		httpx.Fail(c, types.BadJSON("a transaction carries at most %d PDUs and %d EDUs", maxPDUsPerTxn, maxEDUsPerTxn))
		return
	}
	key := txnKey{from, c.Param("txnID")}
	ctx := c.Request.Context()
	entry, first := a.txns.begin(key)
	if !first {
		select {
		case <-entry.done:
		case <-ctx.Done():
			return
		}
		if entry.resp == nil { // the first attempt did not finish
			httpx.Fail(c, types.NewError(503, types.CodeUnknown, "transaction %s is being retried", key.txnID))
			return
		}
		httpx.OK(c, entry.resp)
		return
	}
	release, err := a.txns.slot(ctx, from)
	if err != nil {
		a.txns.forget(key, entry)
		return
	}
	defer release()
	// The work goes on if the sender hangs up: it resends, and finds it done.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), txnWorkDeadline)
	defer cancel()
	results := a.processPDUs(work, from, txn.PDUs)
	for _, edu := range txn.EDUs {
		a.processEDU(work, from, edu.Type, edu.Content)
	}
	entry.resp = gin.H{"pdus": results}
	close(entry.done)
	httpx.OK(c, entry.resp)
}

// processPDUs takes the transaction's PDUs room by room, each room's in
// the order sent.
func (a *API) processPDUs(ctx context.Context, from string, pdus []jsontext.Value) map[id.EventID]federation.PDUProcessingResult {
	results := map[id.EventID]federation.PDUProcessingResult{}
	var roomOrder []string
	byRoom := map[string][]jsontext.Value{}
	for _, p := range pdus {
		r := gjson.GetBytes(p, "room_id").Str
		if _, ok := byRoom[r]; !ok {
			roomOrder = append(roomOrder, r)
		}
		byRoom[r] = append(byRoom[r], p)
	}
	for _, r := range roomOrder {
		if denied := a.opts.Rooms.ServerAllowed(ctx, id.RoomID(r), from); denied != nil {
			// The server ACL: ignored, with an error for each PDU.
			for _, p := range byRoom[r] {
				if eid, err := a.opts.Rooms.PDUEventID(ctx, p); err == nil && eid != "" {
					results[eid] = federation.PDUProcessingResult{Error: denied.Error()}
				}
			}
			continue
		}
		// The room's PDUs go to its writer together (checked in parallel,
		// a linear run stored in one commit); those citing events this
		// server lacks are then taken one by one, in order, fetching what
		// is missing.
		raws := make([][]byte, len(byRoom[r]))
		for i, p := range byRoom[r] {
			raws[i] = p
		}
		outcomes := a.opts.Rooms.IntakeBatch(ctx, from, raws)
		for i, p := range byRoom[r] {
			res, err := outcomes[i].Result, outcomes[i].Err
			if errors.Is(err, rooms.ErrMissingEvents) {
				budget := missingFetches
				res, err = a.intake(ctx, from, p, 0, &budget)
			}
			eid := pduEventID(res, err, p)
			if eid == "" {
				// An error the intake could not name the event in (a
				// storage failure, say): named here, so that the sender
				// hears of it.
				eid, _ = a.opts.Rooms.PDUEventID(ctx, p)
			}
			if eid == "" {
				continue
			}
			results[eid] = pduResult(res, err)
			logOutcome(a.log(), from, eid, res, err)
		}
	}
	return results
}

// intake offers one PDU to the room pipeline; when it cites prev events
// this server does not have, it asks from for them (get_missing_events),
// takes what comes back oldest first, and offers the PDU again. When that
// leaves a gap (or for missing auth events), the PDU of the transaction
// (depth 0) is taken with the state before it fetched instead
// (IntakeFilling: state_ids and event, or state).
func (a *API) intake(ctx context.Context, from string, raw []byte, depth int, budget *int) (*rooms.IntakeResult, error) {
	res, err := a.opts.Rooms.Intake(ctx, from, raw)
	var missing *rooms.MissingEventsError
	if !errors.As(err, &missing) {
		return res, err
	}
	if len(missing.Prev) > 0 && depth < missingDepth && *budget > 0 && a.opts.Client != nil {
		*budget--
		a.fetchMissing(ctx, from, raw, missing, depth, budget)
		res, err = a.opts.Rooms.Intake(ctx, from, raw)
		if !errors.As(err, &missing) {
			return res, err
		}
	}
	if depth > 0 {
		return res, err
	}
	return a.opts.Rooms.IntakeFilling(ctx, from, raw)
}

// fetchMissing asks from for the events between this server's forward
// extremities and the PDU (get_missing_events) and offers them, oldest
// first.
func (a *API) fetchMissing(ctx context.Context, from string, raw []byte, missing *rooms.MissingEventsError, depth int, budget *int) {
	roomID := id.RoomID(gjson.GetBytes(raw, "room_id").Str)
	earliest, xerr := a.opts.Rooms.ForwardExtremities(ctx, roomID)
	if xerr != nil {
		a.log().Warn("forward extremities", "room", roomID, "error", xerr)
		return
	}
	got, ferr := a.opts.Client.GetMissingEvents(ctx, &federation.ReqGetMissingEvents{ServerName: from, RoomID: roomID,
		EarliestEvents: earliest, LatestEvents: []id.EventID{missing.EventID}, Limit: missingLimit})
	if ferr != nil {
		a.log().Warn("get_missing_events failed", "origin", from, "room", roomID, "error", ferr)
		return
	}
	evs := make([]jsontext.Value, 0, len(got.Events))
	for _, e := range got.Events {
		evs = append(evs, jsontext.Value(e))
	}
	sort.SliceStable(evs, func(i, j int) bool {
		return gjson.GetBytes(evs[i], "depth").Int() < gjson.GetBytes(evs[j], "depth").Int()
	})
	for _, e := range evs {
		if gjson.GetBytes(e, "room_id").Str != string(roomID) {
			continue
		}
		if _, err := a.intake(ctx, from, e, depth+1, budget); err != nil {
			a.log().Info("missing event not taken", "origin", from, "room", roomID, "error", err)
		}
	}
}

// pduEventID names a PDU in the answer: as the intake computed it, else
// as the event says (rooms v1, v2), else as its hash would make it.
func pduEventID(res *rooms.IntakeResult, err error, raw []byte) id.EventID {
	if res != nil {
		return res.EventID
	}
	var dropped *rooms.DroppedError
	if errors.As(err, &dropped) && dropped.EventID != "" {
		return dropped.EventID
	}
	var missing *rooms.MissingEventsError
	if errors.As(err, &missing) {
		return missing.EventID
	}
	return id.EventID(gjson.GetBytes(raw, "event_id").Str)
}

// logOutcome tells the operator of a PDU that was not simply accepted:
// dropped, rejected, soft-failed or redacted (bad content hash).
func logOutcome(log *slog.Logger, from string, eid id.EventID, res *rooms.IntakeResult, err error) {
	switch {
	case err != nil:
		log.Info("pdu dropped", "origin", from, "event", eid, "error", err)
	case res.Known:
	case res.Status == rooms.IntakeRejected, res.Status == rooms.IntakeSoftFailed:
		log.Info("pdu "+res.Status.String(), "origin", from, "event", eid, "reason", res.Reason)
	case res.Redacted:
		log.Info("pdu redacted: bad content hash", "origin", from, "event", eid)
	}
}

// pduResult is the PDU's entry: {} when it was stored as accepted or
// soft-failed (the sender need not resend it), an error otherwise.
func pduResult(res *rooms.IntakeResult, err error) federation.PDUProcessingResult {
	switch {
	case err != nil:
		return federation.PDUProcessingResult{Error: err.Error()}
	case res.Status == rooms.IntakeRejected:
		msg := "rejected"
		if res.Reason != nil {
			msg += ": " + res.Reason.Error()
		}
		return federation.PDUProcessingResult{Error: msg}
	}
	return federation.PDUProcessingResult{}
}

// processEDU takes an EDU. Each names users of the origin only (typing,
// receipts, presence, to-device senders, device lists); a bad EDU, or one
// about another server's users, is dropped: EDUs are not answered, and
// never fail the transaction. Unknown EDU types are ignored.
func (a *API) processEDU(ctx context.Context, from, typ string, content jsontext.Value) {
	var err error
	ephemeralType := typ == "m.typing" || typ == "m.receipt" || typ == "m.presence" || typ == "m.direct_to_device"
	keysType := typ == "m.device_list_update" || typ == "m.signing_key_update"
	switch {
	case ephemeralType && a.opts.Ephemeral == nil, keysType && a.opts.Keys == nil, !ephemeralType && !keysType:
		return
	case !isObject(content):
		err = types.BadJSON("the content of an EDU is an object")
	case ephemeralType:
		err = a.ephemeralEDU(ctx, from, typ, content)
	default:
		err = a.keysEDU(ctx, from, typ, content)
	}
	if err != nil {
		a.log().Info("EDU dropped", "origin", from, "type", typ, "error", err)
	}
}

func isObject(raw []byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// keysEDU takes device list and cross-signing key updates.
func (a *API) keysEDU(ctx context.Context, from, typ string, content jsontext.Value) error {
	if typ == "m.device_list_update" {
		var u keys.DeviceListUpdate
		if err := json.Unmarshal(content, &u); err != nil {
			return types.BadJSON("malformed m.device_list_update: %v", err)
		}
		return a.opts.Keys.RemoteDeviceListUpdate(ctx, from, &u)
	}
	var u struct {
		UserID         id.UserID      `json:"user_id"`
		MasterKey      jsontext.Value `json:"master_key"`
		SelfSigningKey jsontext.Value `json:"self_signing_key"`
	}
	if err := json.Unmarshal(content, &u); err != nil {
		return types.BadJSON("malformed m.signing_key_update: %v", err)
	}
	return a.opts.Keys.RemoteSigningKeyUpdate(ctx, from, u.UserID, []byte(u.MasterKey), []byte(u.SelfSigningKey))
}

// ephemeralEDU takes typing, receipts, presence and to-device messages.
func (a *API) ephemeralEDU(ctx context.Context, from, typ string, content jsontext.Value) error {
	switch typ {
	case "m.presence":
		var p struct {
			Push []ephemeral.RemotePresence `json:"push"`
		}
		if err := json.Unmarshal(content, &p); err != nil {
			return types.BadJSON("malformed m.presence: %v", err)
		}
		for _, u := range p.Push[:min(len(p.Push), maxPresencePush)] {
			// One user's bad entry drops that entry only.
			if err := a.opts.Ephemeral.SetRemotePresence(ctx, from, &u); err != nil {
				a.log().Info("presence dropped", "origin", from, "user", u.UserID, "error", err)
			}
		}
		return nil
	case "m.direct_to_device":
		var m struct {
			Sender    id.UserID                               `json:"sender"`
			Type      string                                  `json:"type"`
			MessageID string                                  `json:"message_id"`
			Messages  map[id.UserID]map[string]jsontext.Value `json:"messages"`
		}
		if err := json.Unmarshal(content, &m); err != nil {
			return types.BadJSON("malformed m.direct_to_device: %v", err)
		}
		msgs := make(map[id.UserID]map[string]stdjson.RawMessage, len(m.Messages))
		for u, devs := range m.Messages {
			msgs[u] = make(map[string]stdjson.RawMessage, len(devs))
			for d, c := range devs {
				msgs[u][d] = stdjson.RawMessage(c)
			}
		}
		return a.opts.Ephemeral.DeliverRemoteToDevice(ctx, from, m.Sender, m.Type, m.MessageID, msgs)
	case "m.typing":
		var t struct {
			RoomID id.RoomID `json:"room_id"`
			UserID id.UserID `json:"user_id"`
			Typing bool      `json:"typing"`
		}
		if err := json.Unmarshal(content, &t); err != nil {
			return types.BadJSON("malformed m.typing: %v", err)
		}
		if t.UserID.Homeserver() != from {
			return types.Forbidden("%s is not a user of %s", t.UserID, from)
		}
		if err := a.opts.Rooms.ServerAllowed(ctx, t.RoomID, from); err != nil {
			return err
		}
		// Remote typing lasts the spec's default 30 s unless renewed.
		return a.opts.Ephemeral.SetTyping(ctx, t.RoomID, t.UserID, t.Typing, 30*time.Second)
	case "m.receipt":
		var rs map[id.RoomID]map[string]map[id.UserID]struct {
			EventIDs []id.EventID `json:"event_ids"`
			Data     struct {
				ThreadID string `json:"thread_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(content, &rs); err != nil {
			return types.BadJSON("malformed m.receipt: %v", err)
		}
		for roomID, byType := range rs {
			if a.opts.Rooms.ServerAllowed(ctx, roomID, from) != nil {
				continue // the server ACL denies the server this room's receipts
			}
			for rtype, users := range byType {
				if rtype != "m.read" { // private receipts never cross servers
					continue
				}
				for user, r := range users {
					if user.Homeserver() != from || len(r.EventIDs) == 0 {
						continue
					}
					if err := a.opts.Ephemeral.SetReceipt(ctx, roomID, user, rtype, r.EventIDs[0], r.Data.ThreadID); err != nil {
						a.log().Debug("receipt EDU not taken", "origin", from, "error", err)
					}
				}
			}
		}
	}
	return nil
}

// readJSONObject reads a request body that must be a JSON object.
func readJSONObject(c *gin.Context) ([]byte, error) {
	body, err := httpx.ReadBody(c)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, types.NotJSON("Content not JSON.")
	}
	return body, nil
}
