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
	// LifecycleBytes, LifecycleEvicted and LifecycleLoaded follow the
	// owners' settled lifecycle entries: their estimated memory, those
	// evicted, those read back.
	LifecycleBytes   prometheus.Gauge
	LifecycleEvicted prometheus.Counter
	LifecycleLoaded  prometheus.Counter
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
	m.LifecycleBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "leadconv_lifecycle_settled_bytes",
		Help: "Estimated bytes of the settled lifecycle entries resident in memory (bounded by --lifecycle-cache-bytes).",
	})
	m.LifecycleEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_lifecycle_evictions_total",
		Help: "Settled lifecycle entries dropped from memory to stay within the bound.",
	})
	m.LifecycleLoaded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_lifecycle_loads_total",
		Help: "Evicted lifecycle entries read back from Redis for a change that needed them.",
	})
	reg.MustRegister(m.EventsIn, m.CommandsOut, m.Routed, m.CommandResults, m.LifecycleBytes, m.LifecycleEvicted, m.LifecycleLoaded)
	return m
}
