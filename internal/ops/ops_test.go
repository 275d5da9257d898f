package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestServerEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "leadconv_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)

	s := NewServer(reg)
	redisUp := true
	s.AddCheck("redis", func(context.Context) error {
		if !redisUp {
			return errors.New("down")
		}
		return nil
	})
	s.AddCheck("kafka", func(context.Context) error { return nil })
	h := s.Handler()

	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	// Starting: what is missing is named, with the check's error.
	redisUp = false
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: starting\nredis: down\n" {
		t.Fatalf("/readyz while starting without redis = %d %q", code, body)
	}
	redisUp = true
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: starting\n" {
		t.Fatalf("/readyz before SetReady = %d %q, want 503", code, body)
	}
	s.SetReady(true)
	if code, body := get(t, h, "/readyz"); code != 200 {
		t.Fatalf("/readyz ready = %d %q", code, body)
	}
	redisUp = false
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "redis") || strings.Contains(body, "kafka") {
		t.Fatalf("/readyz with redis down = %d %q, want 503 naming redis only", code, body)
	}
	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "leadconv_test_total 3") {
		t.Fatalf("/metrics = %d %q", code, body)
	}
	s.SetReady(false)
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: stopping\n" {
		t.Fatalf("/readyz stopping = %d %q", code, body)
	}
}

func TestCheckTimeout(t *testing.T) {
	s := NewServer(prometheus.NewRegistry())
	s.CheckTimeout = 20 * time.Millisecond
	s.AddCheck("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	s.SetReady(true)
	if code, body := get(t, s.Handler(), "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "slow") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
}

func TestServeShutsDown(t *testing.T) {
	s := NewServer(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	resp, err := http.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("healthz over TCP = %d %q", resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", FormatAuto)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hidden")
	log.Info().Str("cluster_id", "c1").Msg("planned")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("auto on a buffer must write JSON: %v: %q", err, buf.String())
	}
	if line["cluster_id"] != "c1" || line["message"] != "planned" || line["time"] == nil {
		t.Fatalf("line = %v", line)
	}

	buf.Reset()
	log, err = NewLogger(&buf, "debug", FormatConsole)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Str("k", "v").Msg("shown")
	if got := buf.String(); json.Valid(buf.Bytes()) || !strings.Contains(got, "shown") || !strings.Contains(got, "k=v") {
		t.Fatalf("console output = %q", got)
	}

	for _, tc := range []struct{ level, format, want string }{
		{"loud", FormatJSON, "trace, debug, info, warn, error"},
		{"", FormatJSON, "log level"},
		{"info", "xml", "auto, json, console"},
	} {
		if _, err := NewLogger(&buf, tc.level, tc.format); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewLogger(%q, %q) error = %v, want it to contain %q", tc.level, tc.format, err, tc.want)
		}
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{"half", 500, 1000, 10 * time.Second, "events [=====>    ]  50%  500/1000  50/s  ETA 10s"},
		{"done", 1000, 1000, 10 * time.Second, "events [==========] 100%  1000/1000  100/s  ETA 0s"},
		{"start", 0, 1000, 0, "events [>         ]   0%  0/1000  0/s  ETA ?"},
		{"unknown total", 25000, 0, 2 * time.Second, "events 25000  12.5k/s  2s"},
		{"past total", 1200, 1000, time.Second, "events [==========] 100%  1200/1000  1200/s  ETA 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Bar("events", tc.done, tc.total, tc.elapsed, 10); got != tc.want {
				t.Fatalf("Bar = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProgressLogsWhenNotATerminal(t *testing.T) {
	var out, logs bytes.Buffer
	p := NewProgress(&out, zerolog.New(&logs), "events")
	clock := p.start
	p.now = func() time.Time { return clock }
	p.SetTotal(100)
	p.Add(40)
	clock = clock.Add(4 * time.Second)
	p.report(false)
	p.Add(60)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx)

	if out.Len() != 0 {
		t.Fatalf("no bar expected on a non-terminal writer, got %q", out.String())
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got %q", logs.String())
	}
	var first, last map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &last)
	if first["done"] != 40.0 || first["total"] != 100.0 || first["per_second"] != 10.0 || first["eta"] != 6000.0 {
		t.Fatalf("first progress line = %v", first)
	}
	if last["message"] != "progress final" || last["done"] != 100.0 {
		t.Fatalf("final progress line = %v", last)
	}
}

// A dependency that is merely down is waited for; one whose error no wait
// mends (refused credentials) stops the wait at once with that error.
func TestAwaitDependenciesFatal(t *testing.T) {
	down := errors.New("connection refused")
	denied := errors.New("WRONGPASS invalid username-password pair")
	var pings atomic.Int32
	dep := Dependency{Name: "redis", Addr: "127.0.0.1:1",
		Ping: func(context.Context) error {
			if pings.Add(1) < 3 {
				return down
			}
			return denied
		},
		Fatal: func(err error) bool { return errors.Is(err, denied) }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := AwaitDependencies(ctx, zerolog.Nop(), dep)
	if !errors.Is(err, denied) || pings.Load() != 3 {
		t.Fatalf("err %v after %d pings, want the fatal error at the third", err, pings.Load())
	}
}
