package consumer

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the consumer's Prometheus collectors.
type Metrics struct {
	Lag         *prometheus.GaugeVec
	DeadLetters *prometheus.CounterVec
	Retries     *prometheus.CounterVec
	Latency     prometheus.Histogram
	Paused      prometheus.Counter
	Lost        prometheus.Counter
	// Retrying is the number of partitions whose batch waits out a
	// transient failure.
	Retrying prometheus.Gauge
	// ProduceErrors counts failed produce attempts by output topic.
	ProduceErrors *prometheus.CounterVec
}

// NewMetrics registers the consumer's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadconv_consumer_lag",
			Help: "Records of a partition this member owns not yet committed by the group: the high watermark less the committed offset, refreshed every 10s.",
		}, []string{"topic", "partition"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadconv_dlq_records_total",
			Help: "Input records sent to the dead-letter topic, by error code.",
		}, []string{"code"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadconv_batch_retries_total",
			Help: "Retries of a batch after a failure, by stage (handle, produce) and error code.",
		}, []string{"stage", "code"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leadconv_processing_latency_seconds",
			Help:    "From the input record's timestamp to the acknowledgement of the output it caused.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	m.Paused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_consumer_paused_total",
		Help: "Times a partition's fetching was paused because its worker fell behind (resumed once it caught up).",
	})
	m.Lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_partitions_stopped_total",
		Help: "Partitions whose worker stopped without committing (ErrPartitionLost: fenced, or state lost).",
	})
	m.Retrying = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "leadconv_partitions_retrying",
		Help: "Partitions whose batch is being retried after a transient failure (Redis or the broker unavailable).",
	})

	m.ProduceErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadconv_produce_errors_total",
		Help: "Records the broker did not take on an attempt (retried), by output topic: a missing topic, an outage.",
	}, []string{"topic"})
	reg.MustRegister(m.Lag, m.DeadLetters, m.Retries, m.Latency, m.Paused, m.Lost, m.Retrying, m.ProduceErrors)
	return m
}
