package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus collectors; the consumer's (lag,
// dead letters, retries, latency to ack) and the store's (Redis round trips)
// are registered beside them.
type Metrics struct {
	EventsIn    *prometheus.CounterVec
	CommandsOut *prometheus.CounterVec
	Routed      prometheus.Counter
}

// NewMetrics registers the pipeline's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadconv_events_in_total",
			Help: "Record events applied to the matcher, by object and op.",
		}, []string{"object", "op"}),
		CommandsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadconv_commands_out_total",
			Help: "Commands planned for production, by CloudEvents type.",
		}, []string{"type"}),
	}
	m.Routed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_events_routed_total",
		Help: "Input record events forwarded to the by-tenant topic.",
	})
	reg.MustRegister(m.EventsIn, m.CommandsOut, m.Routed)
	return m
}
