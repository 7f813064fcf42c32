package e2erooms

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func threadReply(root id.EventID, body string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root, "is_falling_back": true}}
}

func edit(original id.EventID, body string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": original}}
}

func reaction(target id.EventID, key string) map[string]any {
	return map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": target, "key": key}}
}

// threadsOf lists /v1/rooms/{id}/threads as cli.
func (e *env) threadsOf(t testing.TB, cli *mautrix.Client, room id.RoomID, kv ...string) (roots []id.EventID, next string) {
	t.Helper()
	var res struct {
		Chunk     []map[string]any `json:"chunk"`
		NextBatch string           `json:"next_batch"`
	}
	e.doInto(t, cli, http.MethodGet, q(p("v1", "rooms", room, "threads"), kv...), nil, &res)
	for _, ev := range res.Chunk {
		if path(ev, "unsigned", "m.relations", "m.thread") == nil {
			t.Fatalf("thread root without a thread summary: %v", ev)
		}
		roots = append(roots, id.EventID(ev["event_id"].(string)))
	}
	return roots, res.NextBatch
}

func TestRelations(t *testing.T) { relationsFlow(t, newEnv(t)) }

func relationsFlow(t *testing.T, e *env) {
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	room := publicRoom(t, alice, "")
	join(t, bob, room)
	join(t, carol, room)

	t.Run("edits", func(t *testing.T) {
		orig := sendText(t, alice, room, "helo")
		first := sendEvent(t, alice, room, "m.room.message", edit(orig, "hello"))
		latest := sendEvent(t, alice, room, "m.room.message", edit(orig, "hello!"))
		// Bob's "edit" of alice's message is not a valid replacement.
		bobEdit := sendEvent(t, bob, room, "m.room.message", edit(orig, "hijacked"))
		for _, viewer := range []*mautrix.Client{alice, carol} {
			raw := e.rawEvent(t, viewer, room, orig)
			repl, _ := path(raw, "unsigned", "m.relations", "m.replace").(map[string]any)
			if repl == nil || repl["event_id"] != string(latest) || path(repl, "content", "m.new_content", "body") != "hello!" {
				t.Fatalf("m.replace of the original (seen by %s) = %v, want %s", viewer.UserID, repl, latest)
			}
			if raw["content"].(map[string]any)["body"] != "helo" {
				t.Fatalf("original content changed: %v", raw["content"])
			}
		}
		// The relations endpoint lists every m.replace, newest first.
		rels := must(carol.GetRelations(ctx(t), room, orig, &mautrix.ReqGetRelations{RelationType: event.RelReplace})).of(t)
		equal(t, "m.replace relations", ids(rels.Chunk), []id.EventID{bobEdit, latest, first})
		// An edit sent in another room does not count.
		other := publicRoom(t, alice, "")
		sendEvent(t, alice, other, "m.room.message", edit(orig, "from elsewhere"))
		if repl := path(e.rawEvent(t, bob, room, orig), "unsigned", "m.relations", "m.replace", "event_id"); repl != string(latest) {
			t.Fatalf("m.replace after a cross-room edit = %v, want %s", repl, latest)
		}
		rels = must(carol.GetRelations(ctx(t), room, orig, &mautrix.ReqGetRelations{RelationType: event.RelReplace})).of(t)
		equal(t, "m.replace relations after a cross-room edit", ids(rels.Chunk), []id.EventID{bobEdit, latest, first})
		// Redacting the latest edit falls back to the one before.
		must(alice.RedactEvent(ctx(t), room, latest)).of(t)
		if repl := path(e.rawEvent(t, bob, room, orig), "unsigned", "m.relations", "m.replace", "event_id"); repl != string(first) {
			t.Fatalf("m.replace after redacting the latest edit = %v, want %s", repl, first)
		}
		// A redacted original has no aggregations.
		must(alice.RedactEvent(ctx(t), room, orig)).of(t)
		if rel := path(e.rawEvent(t, bob, room, orig), "unsigned", "m.relations"); rel != nil {
			t.Fatalf("redacted original still has m.relations %v", rel)
		}
	})

	t.Run("threads", func(t *testing.T) {
		root := sendText(t, alice, room, "thread root")
		r1 := sendEvent(t, bob, room, "m.room.message", threadReply(root, "reply 1"))
		r2 := sendEvent(t, bob, room, "m.room.message", threadReply(root, "reply 2"))
		check := func(viewer *mautrix.Client, participated bool) {
			t.Helper()
			raw := e.rawEvent(t, viewer, room, root)
			th, _ := path(raw, "unsigned", "m.relations", "m.thread").(map[string]any)
			if th == nil {
				t.Fatalf("no thread summary for %s: %v", viewer.UserID, raw["unsigned"])
			}
			if th["count"] != float64(2) || path(th, "latest_event", "event_id") != string(r2) ||
				path(th, "latest_event", "content", "body") != "reply 2" || th["current_user_participated"] != participated {
				t.Fatalf("thread summary for %s: %v", viewer.UserID, th)
			}
		}
		check(alice, true) // the root's sender participates
		check(bob, true)
		check(carol, false)
		// The summary is on the root in /messages and /context too.
		for _, ev := range page(t, carol, room, "", "", mautrix.DirectionBackward, 10, nil).Chunk {
			if ev.ID == root && (ev.Unsigned.Relations == nil || ev.Unsigned.Relations.Thread.GetCount() != 2) {
				t.Fatalf("/messages root unsigned %+v", ev.Unsigned.Relations)
			}
		}
		rels := must(carol.GetRelations(ctx(t), room, root, &mautrix.ReqGetRelations{RelationType: event.RelThread})).of(t)
		equal(t, "thread relations", ids(rels.Chunk), []id.EventID{r2, r1})
		rels = must(carol.GetRelations(ctx(t), room, root, &mautrix.ReqGetRelations{RelationType: event.RelThread, Dir: mautrix.DirectionForward})).of(t)
		equal(t, "thread relations forwards", ids(rels.Chunk), []id.EventID{r1, r2})

		roots, _ := e.threadsOf(t, carol, room)
		if !slices.Contains(roots, root) {
			t.Fatalf("/threads %v lacks %s", roots, root)
		}
		if roots, _ := e.threadsOf(t, carol, room, "include", "participated"); len(roots) != 0 {
			t.Fatalf("carol participated in %v", roots)
		}
		if roots, _ := e.threadsOf(t, bob, room, "include", "participated"); !slices.Equal(roots, []id.EventID{root}) {
			t.Fatalf("bob participated in %v", roots)
		}
		// Carol replies: now she participates, and a newer thread sorts first.
		sendEvent(t, carol, room, "m.room.message", threadReply(root, "reply 3"))
		check2 := path(e.rawEvent(t, carol, room, root), "unsigned", "m.relations", "m.thread", "current_user_participated")
		if check2 != true {
			t.Fatalf("carol's participation after replying: %v", check2)
		}
		root2 := sendText(t, bob, room, "second root")
		sendEvent(t, alice, room, "m.room.message", threadReply(root2, "r"))
		roots, _ = e.threadsOf(t, carol, room)
		equal(t, "threads by latest activity", roots, []id.EventID{root2, root})
		first, next := e.threadsOf(t, carol, room, "limit", "1")
		if !slices.Equal(first, []id.EventID{root2}) || next == "" {
			t.Fatalf("first page %v next %q", first, next)
		}
		second, _ := e.threadsOf(t, carol, room, "limit", "1", "from", next)
		equal(t, "second page of threads", second, []id.EventID{root})
		if roots, _ := e.threadsOf(t, carol, room, "include", "participated"); !slices.Equal(roots, []id.EventID{root}) {
			t.Fatalf("carol participated in %v", roots)
		}
		status, body := e.do(t, carol, http.MethodGet, q(p("v1", "rooms", room, "threads"), "include", "some"), nil)
		wantStatus(t, "bad include", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("reactions", func(t *testing.T) {
		target := sendText(t, alice, room, "react to me")
		var reacts []id.EventID
		for i, cli := range []*mautrix.Client{bob, carol, alice} {
			reacts = append(reacts, sendEvent(t, cli, room, "m.reaction", reaction(target, fmt.Sprint("👍", i))))
		}
		reply := sendEvent(t, bob, room, "m.room.message", threadReply(target, "and a thread"))
		all := must(carol.GetRelations(ctx(t), room, target, &mautrix.ReqGetRelations{})).of(t)
		equal(t, "all relations", ids(all.Chunk), []id.EventID{reply, reacts[2], reacts[1], reacts[0]})
		ann := must(carol.GetRelations(ctx(t), room, target, &mautrix.ReqGetRelations{RelationType: event.RelAnnotation})).of(t)
		equal(t, "annotations", ids(ann.Chunk), reversed(reacts))
		typed := must(carol.GetRelations(ctx(t), room, target, &mautrix.ReqGetRelations{RelationType: event.RelAnnotation,
			EventType: event.EventReaction})).of(t)
		equal(t, "annotations of type m.reaction", ids(typed.Chunk), reversed(reacts))
		if path(typed.Chunk[0].Content.Raw, "m.relates_to", "key") != "👍2" {
			t.Fatalf("reaction content %v", typed.Chunk[0].Content.Raw)
		}
		none := must(carol.GetRelations(ctx(t), room, target, &mautrix.ReqGetRelations{RelationType: event.RelAnnotation,
			EventType: event.EventMessage})).of(t)
		if len(none.Chunk) != 0 {
			t.Fatalf("annotations of type m.room.message: %v", ids(none.Chunk))
		}
		// Pagination in pages of one, both directions, without repeats.
		var got []id.EventID
		from := ""
		for range 10 {
			res := must(carol.GetRelations(ctx(t), room, target, &mautrix.ReqGetRelations{RelationType: event.RelAnnotation,
				Limit: 1, From: from})).of(t)
			got = append(got, ids(res.Chunk)...)
			if res.NextBatch == "" {
				break
			}
			from = res.NextBatch
		}
		equal(t, "paged annotations", got, reversed(reacts))
		got, from = nil, ""
		for range 10 {
			res := must(carol.GetRelations(ctx(t), room, target, &mautrix.ReqGetRelations{RelationType: event.RelAnnotation,
				Limit: 2, From: from, Dir: mautrix.DirectionForward})).of(t)
			got = append(got, ids(res.Chunk)...)
			if res.NextBatch == "" {
				break
			}
			from = res.NextBatch
		}
		equal(t, "paged annotations forwards", got, reacts)
		// Someone outside the room cannot list relations; an unknown parent is 404.
		outsider := e.user(t, "outsider")
		private := createRoom(t, alice, nil)
		pm := sendText(t, alice, private, "private")
		_, err := outsider.GetRelations(ctx(t), private, pm, &mautrix.ReqGetRelations{})
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = carol.GetRelations(ctx(t), room, "$nope", &mautrix.ReqGetRelations{})
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("relations from another room are ignored", func(t *testing.T) {
		root := sendText(t, alice, room, "root here")
		sendEvent(t, alice, room, "m.room.message", threadReply(root, "real reply"))
		elsewhere := publicRoom(t, bob, "")
		foreign := sendEvent(t, bob, elsewhere, "m.room.message", threadReply(root, "foreign reply"))
		sendEvent(t, bob, elsewhere, "m.reaction", reaction(root, "x"))
		th := path(e.rawEvent(t, carol, room, root), "unsigned", "m.relations", "m.thread").(map[string]any)
		if th["count"] != float64(1) || path(th, "latest_event", "content", "body") != "real reply" {
			t.Fatalf("thread summary counts a reply from another room: %v", th)
		}
		rels := must(carol.GetRelations(ctx(t), room, root, &mautrix.ReqGetRelations{})).of(t)
		for _, ev := range rels.Chunk {
			if ev.RoomID != room || ev.ID == foreign {
				t.Fatalf("relations of %s include %s from room %s", root, ev.ID, ev.RoomID)
			}
		}
		if len(rels.Chunk) != 1 {
			t.Fatalf("relations %v", ids(rels.Chunk))
		}
		// A thread whose root is in another room is not listed in this room's threads.
		other := sendText(t, bob, elsewhere, "root elsewhere")
		sendEvent(t, bob, room, "m.room.message", threadReply(other, "reply to a root in another room"))
		roots, _ := e.threadsOf(t, carol, room)
		if slices.Contains(roots, other) {
			t.Fatalf("/threads of %s lists %s, a root in another room", room, other)
		}
	})
}

// TestThreadsPagination pages through /threads when some thread roots are
// hidden from the user and when a thread's latest reply is redacted.
func TestThreadsPagination(t *testing.T) { threadsPaginationFlow(t, newEnv(t)) }

func threadsPaginationFlow(t *testing.T, e *env) {
	all := func(cli *mautrix.Client, room id.RoomID, limit int) []id.EventID {
		t.Helper()
		var out []id.EventID
		from := ""
		for range 20 {
			kv := []string{"limit", fmt.Sprint(limit)}
			if from != "" {
				kv = append(kv, "from", from)
			}
			roots, next := e.threadsOf(t, cli, room, kv...)
			out = append(out, roots...)
			if next == "" {
				return out
			}
			from = next
		}
		t.Fatal("threads pagination does not end")
		return nil
	}

	t.Run("hidden roots", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := roomWithVisibility(t, alice, "joined")
		x1 := sendText(t, alice, room, "hidden root 1")
		x2 := sendText(t, alice, room, "hidden root 2")
		invite(t, alice, room, bob.UserID)
		join(t, bob, room)
		v2 := sendText(t, alice, room, "visible root 2")
		v1 := sendText(t, alice, room, "visible root 1")
		// Activity, oldest first: v2, x2, x1, v1.
		for _, root := range []id.EventID{v2, x2, x1, v1} {
			sendEvent(t, alice, room, "m.room.message", threadReply(root, "reply"))
		}
		equal(t, "alice's threads", all(alice, room, 50), []id.EventID{v1, x1, x2, v2})
		for _, limit := range []int{1, 2, 3, 50} {
			equal(t, fmt.Sprintf("bob's threads in pages of %d", limit), all(bob, room, limit), []id.EventID{v1, v2})
		}
	})

	t.Run("redacted latest reply", func(t *testing.T) {
		alice := e.user(t, "alice")
		room := createRoom(t, alice, nil)
		a := sendText(t, alice, room, "root a")
		b := sendText(t, alice, room, "root b")
		sendEvent(t, alice, room, "m.room.message", threadReply(a, "a1"))
		sendEvent(t, alice, room, "m.room.message", threadReply(b, "b1"))
		a2 := sendEvent(t, alice, room, "m.room.message", threadReply(a, "a2"))
		must(alice.RedactEvent(ctx(t), room, a2)).of(t)
		full := all(alice, room, 50)
		if len(full) != 2 || !slices.Contains(full, a) || !slices.Contains(full, b) {
			t.Fatalf("threads %v", full)
		}
		equal(t, "threads in pages of 1", all(alice, room, 1), full)
		th := path(e.rawEvent(t, alice, room, a), "unsigned", "m.relations", "m.thread").(map[string]any)
		if th["count"] != float64(1) || path(th, "latest_event", "content", "body") != "a1" {
			t.Fatalf("summary after redacting the latest reply: %v", th)
		}
	})
}

// TestAggregationsRespectVisibility checks that bundled aggregations do not
// show a user events they may not see.
func TestAggregationsRespectVisibility(t *testing.T) { aggregationsRespectVisibilityFlow(t, newEnv(t)) }

func aggregationsRespectVisibilityFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := publicRoom(t, alice, "")
	join(t, bob, room)
	root := sendText(t, alice, room, "root")
	r1 := sendEvent(t, alice, room, "m.room.message", threadReply(root, "seen by bob"))
	e1 := sendEvent(t, alice, room, "m.room.message", edit(root, "edited while bob was there"))
	leave(t, bob, room)
	sendEvent(t, alice, room, "m.room.message", threadReply(root, "after bob left"))
	sendEvent(t, alice, room, "m.room.message", edit(root, "edited after bob left"))

	raw := e.rawEvent(t, bob, room, root)
	if latest := path(raw, "unsigned", "m.relations", "m.thread", "latest_event", "event_id"); latest != nil && latest != string(r1) {
		t.Fatalf("bob, who left, sees thread reply %v sent after he left", latest)
	}
	if repl := path(raw, "unsigned", "m.relations", "m.replace", "event_id"); repl != nil && repl != string(e1) {
		t.Fatalf("bob, who left, sees edit %v sent after he left", repl)
	}
	for _, ev := range timeline(t, bob, room, mautrix.DirectionBackward, 10) {
		if ev.ID != root || ev.Unsigned.Relations == nil {
			continue
		}
		if b, _ := path(raw, "unsigned", "m.relations", "m.thread", "latest_event", "content", "body").(string); b == "after bob left" {
			t.Fatal("/messages leaks the later reply")
		}
	}
	// Alice sees the newest.
	araw := e.rawEvent(t, alice, room, root)
	if path(araw, "unsigned", "m.relations", "m.thread", "latest_event", "content", "body") != "after bob left" ||
		path(araw, "unsigned", "m.relations", "m.thread", "count") != float64(2) ||
		path(araw, "unsigned", "m.relations", "m.replace", "content", "m.new_content", "body") != "edited after bob left" {
		t.Fatalf("alice's aggregations %v", araw["unsigned"])
	}
}
