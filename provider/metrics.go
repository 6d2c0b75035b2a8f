package provider

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
)

// PathMetrics is where Prometheus scrapes keystep (with an admin token).
const PathMetrics = "/metrics"

// routeMetrics serves the Prometheus metrics, behind the admin token (a
// scrape reads the store, so strangers may not trigger it; Prometheus sends
// the token with authorization: {credentials_file: …}).
func (s *Server) routeMetrics() {
	reg := s.tel.reg
	reg.MustRegister(directoryCollector{sources: s.directory, timeout: healthTimeout, clock: s.clock})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	s.mux.HandleFunc("GET "+PathMetrics, s.authAdmin(h.ServeHTTP))
}

// directoryCollector reports each directory source's sync status, read
// from the store at scrape time (so every instance reports the same).
type directoryCollector struct {
	sources []*directory.Source
	timeout time.Duration
	clock   flows.Clock
}

var (
	dirUp = prometheus.NewDesc("keystep_directory_up",
		"1 when the source's last sync worked, 0 while it fails, the guard stopped it or none has run yet.", []string{"source"}, nil)
	dirHealth = prometheus.NewDesc("keystep_directory_health",
		"The source's sync health: 1 for the current one of never, ok, failing, guard.", []string{"source", "health"}, nil)
	dirFailures = prometheus.NewDesc("keystep_directory_consecutive_failures",
		"Syncs of the source that failed in a row (the accounts keep their last known states).", []string{"source"}, nil)
	dirLastFull = prometheus.NewDesc("keystep_directory_last_full_sync_timestamp_seconds",
		"When the source's last full sync finished.", []string{"source"}, nil)
	dirLastFullDuration = prometheus.NewDesc("keystep_directory_last_full_sync_duration_seconds",
		"How long the source's last full sync took.", []string{"source"}, nil)
	dirLastFullEntries = prometheus.NewDesc("keystep_directory_last_full_sync_entries",
		"How many users the source's last full sync read.", []string{"source"}, nil)
	dirLastChange = prometheus.NewDesc("keystep_directory_last_change_timestamp_seconds",
		"When the incremental sync last applied a change from the source.", []string{"source"}, nil)
	dirLag = prometheus.NewDesc("keystep_directory_lag_seconds",
		"Time since the source's last full sync finished or its incremental sync last applied a change, whichever is later (absent before either).", []string{"source"}, nil)
)

// Describe sends the descriptions of the directory metrics.
func (directoryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dirUp, dirHealth, dirFailures, dirLastFull, dirLastFullDuration, dirLastFullEntries, dirLastChange, dirLag} {
		ch <- d
	}
}

// Collect reads every source's status.
func (c directoryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, src := range c.sources {
		st, err := src.Status(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(dirUp, err)
			continue
		}
		name := src.Name()
		up := 0.0
		if st.Health == directory.HealthOK {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(dirUp, prometheus.GaugeValue, up, name)
		for _, h := range []string{directory.HealthNever, directory.HealthOK, directory.HealthFailing, directory.HealthGuard} {
			v := 0.0
			if st.Health == h {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(dirHealth, prometheus.GaugeValue, v, name, h)
		}
		ch <- prometheus.MustNewConstMetric(dirFailures, prometheus.GaugeValue, float64(st.Failures), name)
		if f := st.LastFull; f != nil && !f.Finished.IsZero() {
			ch <- prometheus.MustNewConstMetric(dirLastFull, prometheus.GaugeValue, float64(f.Finished.UnixNano())/1e9, name)
			ch <- prometheus.MustNewConstMetric(dirLastFullDuration, prometheus.GaugeValue, f.Duration().Seconds(), name)
			ch <- prometheus.MustNewConstMetric(dirLastFullEntries, prometheus.GaugeValue, float64(f.Entries), name)
		}
		if !st.LastChange.IsZero() {
			ch <- prometheus.MustNewConstMetric(dirLastChange, prometheus.GaugeValue, float64(st.LastChange.UnixNano())/1e9, name)
		}
		if last := lastSync(st); !last.IsZero() {
			ch <- prometheus.MustNewConstMetric(dirLag, prometheus.GaugeValue, max(0, c.clock.Now().Sub(last).Seconds()), name)
		}
	}
}

// lastSync is when the source's state was last brought up to date: its
// last full sync's end or its last incremental change, whichever is later
// (zero: neither yet).
func lastSync(st directory.Status) time.Time {
	var last time.Time
	if f := st.LastFull; f != nil {
		last = f.Finished
	}
	if st.LastChange.After(last) {
		last = st.LastChange
	}
	return last
}
