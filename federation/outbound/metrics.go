package outbound

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-hs/tributary/core/stream"
)

// maxLabeled bounds the destinations named in per-destination series, so
// that a server federating with thousands keeps a bounded /metrics: the
// failing ones first (the stuck queues an operator looks for), then the
// deepest queues.
const maxLabeled = 50

var (
	txnsDesc = prometheus.NewDesc("tributary_federation_transactions_total",
		"Federation transactions by outcome: sent (acknowledged), failed (retried later), dropped (refused for good).",
		[]string{"result"}, nil)
	pdusDesc = prometheus.NewDesc("tributary_federation_pdus_sent_total",
		"PDUs in acknowledged federation transactions.", nil, nil)
	caughtUpDesc = prometheus.NewDesc("tributary_federation_pdus_skipped_total",
		"Queued PDUs dropped for destinations unreachable longer than catch_up_after (they fetch them when back).", nil, nil)
	edusDesc = prometheus.NewDesc("tributary_federation_edus_sent_total",
		"EDUs in acknowledged federation transactions.", nil, nil)
	depthTotalDesc = prometheus.NewDesc("tributary_federation_queue_depth_total",
		"Events queued for other servers, all destinations together.", nil, nil)
	failingDesc = prometheus.NewDesc("tributary_federation_destinations_failing",
		"Destinations whose last transaction failed (being backed off).", nil, nil)
	depthDesc = prometheus.NewDesc("tributary_federation_destination_queue_depth",
		"Events queued for a destination (failing and deepest destinations only, at most 50).", []string{"destination"}, nil)
	failuresDesc = prometheus.NewDesc("tributary_federation_destination_failures",
		"Transactions to a destination failed in a row (same destinations as the queue depth).", []string{"destination"}, nil)
	lastSuccessDesc = prometheus.NewDesc("tributary_federation_destination_last_success_timestamp_seconds",
		"When a destination last acknowledged a transaction, as seen by this process (0: not since it started).",
		[]string{"destination"}, nil)
)

type metrics struct {
	sent, failed, dropped, pdus, edus, skipped atomic.Int64
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) txnSent(pdus, edus int) {
	m.sent.Add(1)
	m.pdus.Add(int64(pdus))
	m.edus.Add(int64(edus))
}
func (m *metrics) txnFailed()  { m.failed.Add(1) }
func (m *metrics) txnDropped() { m.dropped.Add(1) }

// Collector exposes the sender's metrics in /metrics.
func (s *Sender) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Sender }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{txnsDesc, pdusDesc, caughtUpDesc, edusDesc, depthTotalDesc, failingDesc, depthDesc,
		failuresDesc, lastSuccessDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.metrics
	ch <- prometheus.MustNewConstMetric(txnsDesc, prometheus.CounterValue, float64(m.sent.Load()), "sent")
	ch <- prometheus.MustNewConstMetric(txnsDesc, prometheus.CounterValue, float64(m.failed.Load()), "failed")
	ch <- prometheus.MustNewConstMetric(txnsDesc, prometheus.CounterValue, float64(m.dropped.Load()), "dropped")
	ch <- prometheus.MustNewConstMetric(pdusDesc, prometheus.CounterValue, float64(m.pdus.Load()))
	ch <- prometheus.MustNewConstMetric(caughtUpDesc, prometheus.CounterValue, float64(m.skipped.Load()))
	ch <- prometheus.MustNewConstMetric(edusDesc, prometheus.CounterValue, float64(m.edus.Load()))
	states := c.s.dests.snapshot()
	var failing []string
	for dest, st := range states {
		if st.failing {
			failing = append(failing, dest)
		}
	}
	ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, float64(len(failing)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	depths, total, err := c.s.store.QueueDepths(ctx, stream.KindFederation, maxLabeled)
	if err != nil {
		c.s.log.Warn("federation metrics: queue depths", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(depthTotalDesc, prometheus.GaugeValue, float64(total))
	slices.SortFunc(failing, func(a, b string) int {
		return cmp.Or(cmp.Compare(states[b].failures, states[a].failures), cmp.Compare(a, b))
	})
	labeled := failing[:min(len(failing), maxLabeled)]
	deep := make([]string, 0, len(depths))
	for dest := range depths {
		deep = append(deep, dest)
	}
	slices.SortFunc(deep, func(a, b string) int { return cmp.Or(cmp.Compare(depths[b], depths[a]), cmp.Compare(a, b)) })
	for _, dest := range deep {
		if len(labeled) >= maxLabeled {
			break
		}
		if !slices.Contains(labeled, dest) {
			labeled = append(labeled, dest)
		}
	}
	for _, dest := range labeled {
		st := states[dest]
		var last float64
		if !st.lastSuccess.IsZero() {
			last = float64(st.lastSuccess.UnixMilli()) / 1000
		}
		if d, ok := depths[dest]; ok || len(depths) < maxLabeled {
			// Known, or known to be empty (every queue was counted).
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(d), dest)
		}
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.GaugeValue, float64(st.failures), dest)
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, last, dest)
	}
}
