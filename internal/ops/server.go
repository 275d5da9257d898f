package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness dependency, such as a Redis ping.
type Check func(ctx context.Context) error

// Server serves /metrics, /healthz and /readyz.
//
// /healthz answers 200 while the process serves HTTP at all (liveness: only a
// wedged process should be restarted). /readyz answers 200 when the service
// has finished starting, is not shutting down and every check passes within
// CheckTimeout; otherwise 503 saying whether it is starting or stopping and
// naming each failing check with its error (`redis: dial tcp
// 10.0.0.5:6379: connection refused`), so a load balancer or orchestrator
// stops routing to it without killing it, and an operator sees what is
// missing.
type Server struct {
	// CheckTimeout bounds each readiness check (default 2s).
	CheckTimeout time.Duration

	reg     prometheus.Gatherer
	ready   atomic.Bool
	started atomic.Bool // was ready once: not ready now means stopping
	mu      sync.Mutex
	checks  map[string]Check
}

// NewServer returns a server exposing the metrics gathered by reg. It starts
// not ready; call SetReady once the service runs.
func NewServer(reg prometheus.Gatherer) *Server {
	return &Server{CheckTimeout: 2 * time.Second, reg: reg, checks: map[string]Check{}}
}

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// SetReady marks the service ready (started) or not (starting, stopping).
func (s *Server) SetReady(ok bool) {
	if ok {
		s.started.Store(true)
	}
	s.ready.Store(ok)
}

// Handler returns the HTTP handler of the three endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = writeText(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}

func writeText(w http.ResponseWriter, s string) (int, error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	return w.Write([]byte(s))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() && s.started.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = writeText(w, "not ready: stopping\n")
		return
	}
	failed := s.failing(r.Context())
	var b strings.Builder
	switch {
	case !s.ready.Load():
		b.WriteString("not ready: starting\n")
	case len(failed) > 0:
		b.WriteString("not ready\n")
	default:
		_, _ = writeText(w, "ok\n")
		return
	}
	for _, f := range failed {
		b.WriteString(f + "\n")
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = writeText(w, b.String())
}

// failing runs every check concurrently and returns "name: error" of each
// that failed, sorted. Check errors name addresses, never record content.
func (s *Server) failing(ctx context.Context) []string {
	s.mu.Lock()
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()

	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for name, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.CheckTimeout)
			defer cancel()
			if err := c(cctx); err != nil {
				mu.Lock()
				failed = append(failed, name+": "+err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Strings(failed)
	return failed
}

// Serve listens on addr and serves until ctx is cancelled, then shuts down
// within a few seconds. Started reports the bound address (useful with
// port 0) once listening.
func (s *Server) Serve(ctx context.Context, addr string, started func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops: listen %s: %w", addr, err)
	}
	if started != nil {
		started(ln.Addr())
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ops: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("ops: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ops: serve: %w", err)
	}
	return nil
}
