package routes

import (
	"sync"

	"github.com/tributary-hs/tributary/core/stream"
)

// reachability tells the appservice delivery queues (appservice/pusher, on
// core/queue) that an appservice they failed to reach is back, so that
// what waits for it is sent at once instead of after the retry backoff
// (up to minutes): a successful ping says so, and so does any request the
// appservice makes while its delivery is failing. Both sides talk through
// the notifier's Unreachable and Reachable changes, so the request may
// reach another process than the one delivering.
type reachability struct {
	notifier stream.Notifier
	// failing holds the IDs of the appservices whose delivery failed
	// since they were last heard from.
	failing sync.Map
}

func newReachability(n stream.Notifier) *reachability {
	r := &reachability{notifier: n}
	n.Observe(r.observe)
	return r
}

func (r *reachability) observe(c stream.Change) {
	if c.Stream != stream.Unreachable {
		return
	}
	for _, q := range c.Queued {
		if q.Kind == stream.KindAppService {
			r.failing.Store(q.ID, struct{}{})
		}
	}
}

// heardFrom is told of each request with the appservice's token: the
// first one after a failed delivery retries it. Requests from a healthy
// appservice publish nothing.
func (r *reachability) heardFrom(asID string) {
	if r == nil {
		return
	}
	if _, was := r.failing.LoadAndDelete(asID); was {
		r.publish(asID)
	}
}

// answered is told of a successful ping: the appservice's queue retries
// whatever it holds, at once.
func (r *reachability) answered(asID string) {
	if r == nil {
		return
	}
	r.failing.Delete(asID)
	r.publish(asID)
}

func (r *reachability) publish(asID string) {
	r.notifier.Publish(stream.Change{Stream: stream.Reachable,
		Queued: []stream.Consumer{{Kind: stream.KindAppService, ID: asID}}})
}
