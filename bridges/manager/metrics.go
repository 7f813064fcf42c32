package manager

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-hs/tributary/plugins/host"
)

var (
	upDesc = prometheus.NewDesc("tributary_plugin_up",
		"1 while the bridge plugin runs (handshake done, events flowing), else 0.", []string{"plugin"}, nil)
	stateDesc = prometheus.NewDesc("tributary_plugin_state",
		"1 for the state the bridge plugin is in (starting, running, restarting, failed, stopped).",
		[]string{"plugin", "state"}, nil)
	restartsDesc = prometheus.NewDesc("tributary_plugin_restarts_total",
		"Launches of the bridge plugin after the first (after a crash, a hang or a failed start).",
		[]string{"plugin"}, nil)
	loginsDesc = prometheus.NewDesc("tributary_plugin_logins",
		"Logins of the bridge plugin by the bridge state they last reported (CONNECTED, TRANSIENT_DISCONNECT, BAD_CREDENTIALS…).",
		[]string{"plugin", "state"}, nil)
)

// Collector exposes the plugins' health and restarts in /metrics.
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Manager }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- stateDesc
	ch <- restartsDesc
	ch <- loginsDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.m.Status() {
		up := 0.0
		if st.State == host.StateRunning {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, st.Name)
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, st.Name, string(st.State))
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(st.Restarts), st.Name)
		byState := map[string]int{}
		for _, l := range st.Logins {
			if l.RemoteID != "" {
				byState[l.State]++
			}
		}
		for state, n := range byState {
			ch <- prometheus.MustNewConstMetric(loginsDesc, prometheus.GaugeValue, float64(n), st.Name, state)
		}
	}
}
