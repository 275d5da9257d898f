package matcher

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
)

// DefaultResidentBytes is the default memory budget of the resident
// matcher state of one process (ResidentOptions.MaxBytes).
const DefaultResidentBytes = 512 << 20

// ResidentOptions configures a Resident.
type ResidentOptions struct {
	// MaxBytes bounds the resident state of every store of the process, as
	// estimated from the sizes of the keys and values it holds (default
	// DefaultResidentBytes). Past it, the least recently used tenants are
	// dropped, then entries of the busiest ones: they are read again from
	// Redis when needed.
	MaxBytes int64
	// PreparedRecords bounds the decoded and normalised records kept for
	// candidates (default 20,000: at 100,000 the live heap it held made the
	// garbage collector cost more CPU than the decoding it saved; see
	// BENCHMARKS.md).
	PreparedRecords int
	// Logger receives warnings (oversize blocks); ids and rule names only.
	Logger zerolog.Logger
	// Registerer, when set, registers the metrics.
	Registerer prometheus.Registerer
}

// Resident is what the stores (owners) of one process share: the memory
// budget of their resident state, the prepared-record cache and the
// metrics.
type Resident struct {
	max    int64
	bytes  atomic.Int64
	prep   *prepCache
	log    zerolog.Logger
	warned sync.Map

	size       prometheus.GaugeFunc
	lookups    *prometheus.CounterVec
	hits, miss prometheus.Counter
	roundTrips prometheus.Histogram
	rtDur      *prometheus.HistogramVec
	fenced     prometheus.Counter
	arms       prometheus.Counter
	broken     prometheus.Counter
	oversize   *prometheus.CounterVec
	evictions  prometheus.Counter
	// written and writtenBytes count the fields and value bytes the
	// fenced writes set or deleted, by hash (hashNames): Redis's cost per
	// event follows them.
	written, writtenBytes [nHashes + 2]prometheus.Counter
}

// NewResident returns a budget and metrics for the stores of one process.
func NewResident(o ResidentOptions) *Resident {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultResidentBytes
	}
	if o.PreparedRecords <= 0 {
		o.PreparedRecords = 20_000
	}
	r := &Resident{max: o.MaxBytes, prep: newPrepCache(o.PreparedRecords), log: o.Logger}
	r.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "leadconv_matcher_resident_bytes",
		Help: "Estimated bytes of matcher state resident in memory (bounded by --matcher-cache-bytes).",
	}, func() float64 { return float64(r.bytes.Load()) })
	r.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadconv_matcher_resident_lookups_total",
		Help: "Keys the matcher needed, by result: hit (resident) or miss (read from Redis).",
	}, []string{"result"})
	r.hits, r.miss = r.lookups.WithLabelValues("hit"), r.lookups.WithLabelValues("miss")
	r.roundTrips = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "leadconv_matcher_batch_round_trips",
		Help:    "Redis round trips per applied batch (1 in the steady state: the fenced write).",
		Buckets: []float64{0, 1, 2, 3, 4, 5, 6, 8},
	})
	r.rtDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "leadconv_matcher_redis_round_trip_seconds",
		Help:    "Duration of one pipelined Redis round trip of the matcher, by phase.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"phase"})
	r.fenced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_matcher_fenced_total",
		Help: "Write batches refused because another owner took the tenant (this owner was stale).",
	})
	r.arms = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_matcher_fence_arms_total",
		Help: "Tenant connections set to watch the tenant's epoch anew (a round trip before the write): a tenant taken, its connection evicted or broken.",
	})
	r.broken = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_matcher_fence_reconnects_total",
		Help: "Tenant connections that broke under a write (a Redis restart, a failover, a killed client), replaced and the write sent again.",
	})
	r.oversize = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadconv_matcher_oversize_blocks_total",
		Help: "Blocks that passed max_block_size and stopped producing candidates, by rule.",
	}, []string{"rule"})
	r.evictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "leadconv_matcher_resident_evictions_total",
		Help: "Tenants or parts of tenants dropped from memory to stay within the budget.",
	})
	written := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadconv_matcher_written_fields_total",
		Help: "Hash fields the matcher's fenced writes set or deleted, by hash (r records, b blocks, a edges, cm/cl/cv clusters, x bans, acct accounts, side/shelf the owner's side state).",
	}, []string{"hash"})
	writtenBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leadconv_matcher_written_bytes_total",
		Help: "Bytes of the values the matcher's fenced writes set, by hash.",
	}, []string{"hash"})
	for i, h := range hashNames {
		r.written[i], r.writtenBytes[i] = written.WithLabelValues(h), writtenBytes.WithLabelValues(h)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(r.size, r.lookups, r.roundTrips, r.rtDur, r.fenced, r.arms, r.broken, r.oversize, r.evictions, written, writtenBytes)
	}
	return r
}

// Bytes is the estimated size of the resident state.
func (r *Resident) Bytes() int64 { return r.bytes.Load() }

// Stats are the counters of a Resident so far: batches applied, their
// Redis round trips, key lookups answered from memory or from Redis, and
// the hash fields written (set or deleted) with their values' bytes.
type Stats struct {
	Batches, RoundTrips, Hits, Misses float64
	Fields, Bytes                     float64
	// FieldsByHash and BytesByHash split Fields and Bytes by hash
	// (hashNames: r records, b blocks, side the owner's side state...).
	FieldsByHash, BytesByHash map[string]float64
}

// Stats reads the counters (benchmarks report them per phase).
func (r *Resident) Stats() Stats {
	var m dto.Metric
	_ = r.roundTrips.Write(&m)
	st := Stats{Batches: float64(m.GetHistogram().GetSampleCount()), RoundTrips: m.GetHistogram().GetSampleSum()}
	_ = r.hits.Write(&m)
	st.Hits = m.GetCounter().GetValue()
	_ = r.miss.Write(&m)
	st.Misses = m.GetCounter().GetValue()
	st.FieldsByHash, st.BytesByHash = make(map[string]float64, len(r.written)), make(map[string]float64, len(r.written))
	for i := range r.written {
		_ = r.written[i].Write(&m)
		st.FieldsByHash[hashNames[i]] = m.GetCounter().GetValue()
		st.Fields += m.GetCounter().GetValue()
		_ = r.writtenBytes[i].Write(&m)
		st.BytesByHash[hashNames[i]] = m.GetCounter().GetValue()
		st.Bytes += m.GetCounter().GetValue()
	}
	return st
}

// Sub is the counters of s since an earlier reading.
func (s Stats) Sub(before Stats) Stats {
	d := Stats{
		Batches: s.Batches - before.Batches, RoundTrips: s.RoundTrips - before.RoundTrips,
		Hits: s.Hits - before.Hits, Misses: s.Misses - before.Misses,
		Fields: s.Fields - before.Fields, Bytes: s.Bytes - before.Bytes,
		FieldsByHash: make(map[string]float64, len(s.FieldsByHash)),
		BytesByHash:  make(map[string]float64, len(s.BytesByHash)),
	}
	for h, n := range s.FieldsByHash {
		d.FieldsByHash[h] = n - before.FieldsByHash[h]
	}
	for h, n := range s.BytesByHash {
		d.BytesByHash[h] = n - before.BytesByHash[h]
	}
	return d
}

// fullLoadRecords is the size up to which a tenant is loaded whole when an
// owner first touches it, so that what it does not hold is known absent
// and a warm tenant needs no reads at all: records whose estimated share
// of the budget is at most a quarter of it.
func (r *Resident) fullLoadRecords() int64 { return r.max / 4 / residentBytesPerRecord }

// residentBytesPerRecord is a stored lead's estimated resident size, every
// hash included (its record value, blocks, edges, cluster entries).
const residentBytesPerRecord = 2048

// drop forgets a tenant's resident state (its epoch stays taken).
func (s *Store) drop(tenant string) {
	if v := s.tenants[tenant]; v != nil {
		s.res.bytes.Add(-v.bytes)
		delete(s.tenants, tenant)
	}
}

// evict keeps the process within its budget after a batch: first the
// least recently used of this store's tenants go, then, if the batch's own
// tenants alone are over it, a share of their entries.
func (s *Store) evict(used []*view) {
	for _, v := range used {
		v.account(s.res)
	}
	if s.res.bytes.Load() <= s.res.max {
		return
	}
	for s.res.bytes.Load() > s.res.max {
		var lru string
		var at uint64
		for t, v := range s.tenants {
			if v.lastUse < s.batches && (lru == "" || v.lastUse < at) {
				lru, at = t, v.lastUse
			}
		}
		if lru == "" {
			break
		}
		s.drop(lru)
		s.res.evictions.Inc()
	}
	for _, v := range used {
		for s.res.bytes.Load() > s.res.max && v.keyCount() > 0 {
			v.shed(2)
			v.account(s.res)
			s.res.evictions.Inc()
		}
	}
}
