package main

import (
	"context"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/pipeline"
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
// the Redis client (close it with the returned func).
func (o *serviceOptions) open(ctx context.Context, e *env) (zerolog.Logger, *config.File, redis.UniversalClient, func(), error) {
	log, err := o.logger(e)
	if err != nil {
		return log, nil, nil, nil, err
	}
	cfg, err := loadConfig(o.configPath)
	if err != nil {
		return log, nil, nil, nil, err
	}
	rdb, closeRedis, err := openRedis(ctx, o.redisURL, false)
	return log, cfg, rdb, closeRedis, err
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// handlerParts are what a pipeline handler is built from; every command
// (run, replay, simulate, demo) builds the same handler, so they all plan
// alike.
type handlerParts struct {
	rdb            redis.UniversalClient
	cfg            *config.File
	namespace      string
	commandsTopic  string
	changesTopic   string
	maxRecordBytes int
	structured     bool
	log            zerolog.Logger
	reg            prometheus.Registerer
	// planner is nil for the handler's default (plans compose, no settle
	// window).
	planner pipeline.Planner
}

func newHandler(p handlerParts) *pipeline.Handler {
	return pipeline.NewHandler(pipeline.HandlerConfig{
		CommandsTopic:  p.commandsTopic,
		ChangesTopic:   p.changesTopic,
		MaxRecordBytes: p.maxRecordBytes,
		Structured:     p.structured,
		Logger:         p.log,
		Metrics:        pipeline.NewMetrics(p.reg),
		Planner:        p.planner,
	}, newStore(p), p.cfg)
}

// newStore is the matcher store of p's namespace and rules.
func newStore(p handlerParts) *matcher.Store {
	return matcher.NewStore(p.rdb, matcher.StoreOptions{
		Namespace: p.namespace, Rules: p.cfg.Rules, Logger: p.log, Registerer: p.reg,
	})
}

// serveWhile serves the ops endpoints on addr while run runs. The server
// starts first (a busy port stops start-up), /readyz turns unready as soon
// as ctx is cancelled (so traffic and orchestrators see the drain), and the
// server stops only after run returned, so metrics stay scrapable during the
// drain.
func serveWhile(ctx context.Context, log zerolog.Logger, srv *ops.Server, addr string, run func(context.Context) error) error {
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
	srv.SetReady(true)
	stopWatch := context.AfterFunc(ctx, func() {
		srv.SetReady(false)
		log.Info().Msg("shutting down: draining in-flight batches")
	})
	defer stopWatch()

	err := run(ctx)
	srv.SetReady(false)
	stopSrv()
	if serr := <-srvErr; err == nil && serr != nil {
		err = fmt.Errorf("ops server: %w", serr)
	}
	return err
}
