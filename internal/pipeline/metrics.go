package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus collectors; the consumer's (lag,
// dead letters, retries, latency to ack) and the store's (Redis round trips)
// are registered beside them.
type Metrics struct {
	EventsIn    *prometheus.CounterVec
	CommandsOut *prometheus.CounterVec
	Routed      prometheus.Counter
	// CommandResults counts the writer's results the owners took, by
	// outcome and reason.
	CommandResults *prometheus.CounterVec
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
	m.CommandResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadconv_command_results_total",
		Help: "CRM writer results (command.result) taken by the tenants' owners, by outcome and reason (\"\" unless failed; \"other\" for a reason that is no snake_case code).",
	}, []string{"outcome", "reason"})
	reg.MustRegister(m.EventsIn, m.CommandsOut, m.Routed, m.CommandResults)
	return m
}
