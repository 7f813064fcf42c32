// Package state resolves Matrix room state: given the states after each of an
// event's prev_events it computes the state before the event.
//
// It implements state resolution v2 (room versions 2–11, content/rooms/v2.md
// and the fragment rooms/fragments/v2-state-res.md) and v2.1 (room version
// 12, content/rooms/v12.md "State resolution"). Room version 1 uses state
// resolution v1, which is not implemented: Resolve returns
// ErrUnsupportedRoomVersion for it.
//
// The package is pure and deterministic: events come only from the caller's
// Loader, authorisation is maunium.net/go/mautrix/federation/eventauth, and the
// result depends neither on the order of the state sets, nor on map iteration
// order, nor on the order in which the Loader returns events.
//
// # Algorithm (spec "Algorithm" section, steps 1–5)
//
//  1. Split the state sets into the unconflicted state map and the conflicted
//     state set; compute the auth difference and (v2.1) the conflicted state
//     subgraph; their union is the full conflicted set. X is every power event
//     of the full conflicted set plus the events of their auth chains that are
//     in the full conflicted set, sorted by reverse topological power ordering
//     (Kahn's algorithm over the auth_events edges inside X, smallest vertex
//     first by: greater sender power level, smaller origin_server_ts, smaller
//     event ID).
//  2. Iterative auth checks over X, starting from the unconflicted state map
//     (v2) or from an empty state map (v2.1).
//  3. The remaining events of the full conflicted set are sorted by mainline
//     ordering based on the power levels event of the partially resolved state.
//  4. Iterative auth checks over them, starting from the partial state.
//  5. The unconflicted state map is laid over the result.
//
// # Interpretations
//
// Auth difference. The spec defines the auth chain of E as "all of E's auth
// events, all of their auth events, and so on" and the full auth chain C_i of
// a state S_i as "the union of the auth chains for each event in S_i". Like
// Synapse, this package counts the events of S_i themselves as part of C_i.
// This only matters for state events that no other event of their state set
// points at; for conflicted events it changes nothing (they are in the full
// conflicted set anyway) and it keeps unconflicted events, which every state
// set agrees on, out of the auth difference.
//
// Resolve walks only the auth chains of the conflicted events, so that large
// unconflicted states (e.g. 10,000 members) are neither loaded nor
// authorised. The auth chains of unconflicted events are in every C_i, so
// with U the unconflicted events and their auth chains,
// ∪C_i − ∩C_i = (∪A_i − ∩A_i) − U, where A_i is the conflicted part of S_i
// with its auth chains. Unconflicted events met while walking the conflicted
// auth chains count as reached by every state set, so their auth chains are
// subtracted exactly. What Resolve cannot see is an unconflicted event u that
// is in no conflicted auth chain but has an event d of ∪A_i − ∩A_i in its own
// auth chain: d is then in every C_i and not in the auth difference, but
// Resolve puts d into the full conflicted set. This takes state sets that
// disagree with the auth chains, such as the "stale state" of MSC4297: in its
// problem B with v2 (up to v11) Resolve replays the intermediate power levels
// event and keeps the newest power levels where the spec (and Synapse) resets
// them to the stale ones; with v2.1 that event is in the conflicted state
// subgraph anyway, so both agree. ResolveExact follows the
// definition exactly by also walking the auth chains of every unconflicted
// event (it loads them all, but still authorises only the full conflicted
// set). Deciding exactly without loading them needs an auth chain index such
// as Synapse's chain cover, which a Loader does not provide.
//
// Conflicted state subgraph (v2.1): "the union of all such paths between any
// pair of events in the conflicted state set (including endpoints)": an event
// is in it when it is in the auth chain of a conflicted event and a conflicted
// event is in its own auth chain (auth events are content hashes, so there are
// no cycles and the two conflicted events differ).
//
// Power events. Exactly as defined by the spec: state events of type
// m.room.power_levels or m.room.join_rules, and m.room.member events whose
// membership is leave or ban and whose sender is not the state_key. (Synapse
// also counts m.room.create; it can only be in the full conflicted set when a
// state set lacks it.)
//
// X. "For each such power event P, enlarge X by adding the events in the auth
// chain of P which also belong to the full conflicted set": the whole auth
// chain of P is walked, also through events outside the full conflicted set.
// The topological order uses the direct auth_events edges between events of
// X ("the DAG formed by auth events").
//
// Sender power level ("when looking at their respective auth_events"): the
// users entry of the sender, else users_default, else 0, from the
// m.room.power_levels event among the event's auth_events; without one, 100
// for the room creator (content.creator up to v10, the create event's sender
// from v11) and 0 for everybody else. In v12 the creators (the create event's
// sender and content.additional_creators) have infinite power; the create
// event is implied by the room ID there.
//
// Mainline. Positions follow the spec literally: e_0 itself is not looked up,
// only e_1, e_2, … (the m.room.power_levels events reached through
// auth_events); an event whose chain never meets the mainline gets ∞ and sorts
// first. If the partial state has no power levels event (possible in v2.1,
// which starts from an empty state) the mainline is empty.
//
// Iterative auth checks ("If a (event_type, state_key) key that is required
// for checking the authorisation rules is not present in the state, then the
// appropriate state event from the event's auth_events is used if the auth
// event is not rejected"): the keys required are the auth events selection of
// the server-server API (pdu.PDU.AuthEventSelection). For each key the entry
// of the partial state is used; if the key is absent, the event's own auth
// event with that key unless it is marked rejected. The event is authorised with eventauth.Authorize against exactly those events
// (eventauth's precomputed auth events, which skip the rules about the
// event's own auth_events list); the event itself is checked, not a clone,
// so rule 5.2's signature check sees what its server signed. Entries of the
// partial state are used even if their
// InternalMeta.Rejected is set: they are the state being checked against, and
// the spec says events rejected against the state at the event are "handled
// as usual by the algorithm" (Synapse instead skips such entries and never
// admits rejected events). Non-state events in an auth chain are never applied.
//
// # eventauth deviations corrected here
//
// mautrix v0.33.0's eventauth follows the spec's membership rules (v0.26.0
// did not, for kicks and bans, the creator's first join and restricted
// joins). Two differences remain and auth.go corrects them:
//
//   - rule 5.3.1 (creator's first join) also requires at most one auth event;
//   - removing a users entry equal to the sender's level from
//     m.room.power_levels makes it panic (a nil dereference); the panic is
//     turned into a rejection, which is what rule 10.9 says.
//
// Not corrected: third-party invites (rule 5.4.1.7 reads the public keys from
// the member event instead of the m.room.third_party_invite event), and room
// version 2, whose legacy event IDs *pdu.PDU cannot compute (every join then
// fails in eventauth).
package state
