package main

import (
	"context"

	"github.com/tributary-hs/tributary/core/admin"
	"github.com/tributary-hs/tributary/federation/outbound"
	"github.com/tributary-hs/tributary/storage"
)

// destinationsAdmin serves the admin API's federation destinations from
// the federation sender (core/admin may not import federation, nor
// federation the admin handlers).
type destinationsAdmin struct{ s *outbound.Sender }

var _ admin.Destinations = destinationsAdmin{}

func (d destinationsAdmin) ListDestinations(ctx context.Context, q admin.DestinationQuery) ([]admin.Destination, int, error) {
	ds, total, err := d.s.ListDestinations(ctx, storage.DestinationQuery{Search: q.Search,
		OrderBy: storage.DestinationOrder(q.OrderBy), Backwards: q.Backwards, From: q.From, Limit: q.Limit})
	if err != nil {
		return nil, 0, err
	}
	out := make([]admin.Destination, len(ds))
	for i, x := range ds {
		out[i] = adminDestination(x)
	}
	return out, total, nil
}

func (d destinationsAdmin) Destination(ctx context.Context, name string) (*admin.Destination, error) {
	x, err := d.s.Destination(ctx, name)
	if err != nil {
		return nil, err
	}
	out := adminDestination(x)
	return &out, nil
}

func (d destinationsAdmin) ResetConnection(ctx context.Context, name string) error {
	return d.s.ResetConnection(ctx, name)
}

// adminDestination is Synapse's shape: null for no failure and for
// nothing acknowledged yet.
func adminDestination(x *storage.Destination) admin.Destination {
	out := admin.Destination{Destination: x.Destination, RetryLastTS: x.RetryLastTS, RetryInterval: x.RetryInterval}
	if x.FailureTS != 0 {
		out.FailureTS = &x.FailureTS
	}
	if x.LastSuccessPos != 0 {
		out.LastSuccessfulStreamOrdering = &x.LastSuccessPos
	}
	return out
}
