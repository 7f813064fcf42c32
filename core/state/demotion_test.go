package state

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

// The topic of TestThreeServersConcurrentStateConverges (internal/e2efed):
// the creator (alice) demotes the moderators charlie and bob while they
// set the topic. Whether charlie's topic survives depends on whether it
// was concurrent with the demotion or before it, as the resolution sees
// the forks:
//   - concurrent (the topic key is conflicted): step 4 checks charlie's
//     topic against the partially resolved power levels, the demotion's,
//     and refuses it;
//   - before the demotion on every fork (the server demoting him had his
//     topic when alice demoted him, and so had the others): the key is
//     unconflicted and step 5 keeps charlie's topic though he may no longer
//     set one — a demotion does not undo what was allowed before it;
//   - before the demotion on one fork, while another fork has bob's
//     topic: conflicted again, both re-checked under the demotion, both
//     refused; the room has no topic.
func TestResolveTopicOfDemotedModerator(t *testing.T) {
	for _, rv := range []id.RoomVersion{id.RoomV10, id.RoomV12} {
		t.Run(string(rv), func(t *testing.T) {
			users := map[id.UserID]int{bob: 50, charlie: 50}
			if !rv.PrivilegedRoomCreators() {
				users[alice] = 100
			}
			rm, head := newRoom(t, rv, alice, nil)
			head = rm.powerLevels(head, alice, users, nil)
			head = rm.joinRule(head, alice, "public")
			head = rm.join(head, bob)
			head = rm.join(head, charlie)
			demoted := map[id.UserID]int{}
			if !rv.PrivilegedRoomCreators() {
				demoted[alice] = 100
			}

			// Concurrent: refused.
			demotion := rm.powerLevels(head, alice, demoted, nil)
			topicC := rm.topic(head, charlie, "charlie's")
			got := rm.resolve(demotion, topicC)
			expectEntries(t, got, map[Key]id.EventID{keyPL: demotion, keyTopic: ""})

			// Before the demotion on every fork: kept (step 5).
			demotionAfter := rm.powerLevels(topicC, alice, demoted, nil)
			elsewhere := rm.send(topicC, bob, "m.room.message", nil, map[string]any{"body": "hi"})
			got = rm.resolve(demotionAfter, elsewhere)
			expectEntries(t, got, map[Key]id.EventID{keyPL: demotionAfter, keyTopic: topicC})

			// Before the demotion on one fork, bob's topic on another: both
			// conflicted, both refused under the demotion.
			topicB := rm.topic(head, bob, "bob's")
			got = rm.resolve(demotionAfter, topicB)
			expectEntries(t, got, map[Key]id.EventID{keyPL: demotionAfter, keyTopic: ""})
		})
	}
}
