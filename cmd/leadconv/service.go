package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/kafkaconn"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/matcher"
)

// loadConfig loads the service config file, or the shipped defaults when
// path is empty. Its errors name the YAML path and the allowed values.
func loadConfig(path string) (*config.File, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// open sets up what run and replay share: the logger, the config file and
// the Redis client (close it with the returned func), not yet connected:
// see ops.AwaitDependencies.
func (o *serviceOptions) open(e *env) (zerolog.Logger, *config.File, redis.UniversalClient, func(), error) {
	log, err := o.logger(e)
	if err != nil {
		return log, nil, nil, nil, err
	}
	cfg, err := loadConfig(o.configPath)
	if err != nil {
		return log, nil, nil, nil, err
	}
	if err := o.redis.Check(); err != nil {
		return log, nil, nil, nil, usagef("%v", err)
	}
	rdb, err := o.redis.Client()
	if err != nil {
		return log, nil, nil, nil, err
	}
	return log, cfg, rdb, func() { _ = rdb.Close() }, nil
}

// redisDep and kafkaDep are the start-up dependencies of run and replay.
// Refused credentials and untrusted certificates stop start-up at once;
// a server not up yet is waited for.
func (o *serviceOptions) redisDep(rdb redis.UniversalClient) ops.Dependency {
	return ops.Dependency{Name: "redis", Addr: o.redis.Addrs(), Fatal: redisconn.Fatal,
		Ping: func(ctx context.Context) error { return o.redis.Ping(ctx, rdb) }}
}

func (o *serviceOptions) kafkaDep(opts []kgo.Opt) ops.Dependency {
	brokers := o.brokerList()
	return ops.Dependency{Name: "kafka", Addr: strings.Join(brokers, ","), Fatal: kafkaconn.Fatal,
		Ping: func(ctx context.Context) error { return o.kafka.Check(ctx, brokers, opts) }}
}

// newRegistry returns a registry with the Go runtime and process
// collectors and leadconv_build_info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := readBuildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "leadconv_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion},
	})
	build.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build)
	return reg
}

// kafkaMetrics adds franz-go's client metrics (kprom: connections, requests,
// bytes and records by broker and topic) under leadconv_kafka_*, labelled
// with the client id. Each client needs its own: the hook registers the
// collectors of the client it is given.
func kafkaMetrics(reg prometheus.Registerer) kgo.Opt {
	return kgo.WithHooks(kprom.NewMetrics("leadconv_kafka", kprom.Registerer(reg), kprom.WithClientLabel()))
}

// handlerParts are what a pipeline handler is built from; every command
// (run, replay, simulate, demo) builds the same handler, so they all plan
// alike.
type handlerParts struct {
	rdb            redis.UniversalClient
	cfg            *config.File
	namespace      string
	residentBytes  int64
	lifecycleBytes int64
	commandsTopic  string
	changesTopic   string
	maxRecordBytes int
	structured     bool
	log            zerolog.Logger
	reg            prometheus.Registerer
	// rebuild: the owners rebuild the namespace (matcher.StoreOptions.Rebuild).
	rebuild bool
}

func newHandler(p handlerParts) *pipeline.Handler {
	return pipeline.NewHandler(pipeline.HandlerConfig{
		CommandsTopic:  p.commandsTopic,
		ChangesTopic:   p.changesTopic,
		MaxRecordBytes: p.maxRecordBytes,
		Structured:     p.structured,
		LifecycleBytes: p.lifecycleBytes,
		Logger:         p.log,
		Metrics:        pipeline.NewMetrics(p.reg),
	}, newOwners(p), p.cfg)
}

// newOwners makes the owners of p's namespace: one matcher store per
// partition, sharing the process's resident budget and metrics.
func newOwners(p handlerParts) pipeline.Owners {
	res := matcher.NewResident(matcher.ResidentOptions{MaxBytes: p.residentBytes, Logger: p.log, Registerer: p.reg})
	return func() pipeline.Owner {
		return matcher.NewStore(p.rdb, matcher.StoreOptions{Namespace: p.namespace, Rules: p.cfg.Rules, Resident: res, Rebuild: p.rebuild})
	}
}

// newReader is a matcher store of p's namespace for reads only (mass
// conversion reads clusters and leads): it never applies, so it takes no
// tenant from the owners.
func newReader(p handlerParts) *matcher.Store {
	return matcher.NewStore(p.rdb, matcher.StoreOptions{Namespace: p.namespace, Rules: p.cfg.Rules})
}

// serveWhile serves the ops endpoints on addr while run runs. The server
// starts first (a busy port stops start-up) and answers /readyz with what
// is missing while await waits for the dependencies; /readyz turns unready
// as soon as ctx is cancelled (so traffic and orchestrators see the drain),
// and the server stops only after run returned, so metrics stay scrapable
// during the drain. A cancellation during await is a clean stop.
func serveWhile(ctx context.Context, log zerolog.Logger, srv *ops.Server, addr string, await, run func(context.Context) error) error {
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	listening := make(chan struct{})
	srvErr := make(chan error, 1)
	go func() {
		srvErr <- srv.Serve(srvCtx, addr, func(a net.Addr) {
			log.Info().Str("addr", a.String()).Msg("serving /metrics /healthz /readyz")
			close(listening)
		})
	}()
	select {
	case <-listening:
	case err := <-srvErr:
		return err
	}
	if err := await(ctx); err != nil {
		stopSrv()
		<-srvErr
		if ctx.Err() != nil {
			log.Info().Msg("shutting down: stopped while waiting for dependencies")
			return nil
		}
		return err
	}
	srv.SetReady(true)
	watched := make(chan struct{})
	stopWatch := context.AfterFunc(ctx, func() {
		defer close(watched)
		srv.SetReady(false)
		log.Info().Msg("shutting down: draining in-flight batches")
	})

	err := run(ctx)
	if !stopWatch() {
		<-watched // the shutdown line comes before the stop line
	}
	srv.SetReady(false)
	stopSrv()
	if serr := <-srvErr; err == nil && serr != nil {
		err = fmt.Errorf("ops server: %w", serr)
	}
	return err
}
