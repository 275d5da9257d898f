package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/requests"
)

// TestMain lets a test run this test binary as the leadconv binary: with
// LEADCONV_TEST_AS_MAIN set it runs main() with the arguments after "--".
func TestMain(m *testing.M) {
	if os.Getenv("LEADCONV_TEST_AS_MAIN") != "" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"leadconv"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		return
	}
	// pgtest.Main stops the private PostgreSQL of the writer's tests.
	os.Exit(pgtest.Main(m))
}

// SIGTERM to the process stops the service gracefully: it drains, commits,
// logs that it stopped and exits 0.
func TestRunStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	rs := redistest.New(t)
	var stderr syncBuffer
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "run", "--brokers", strings.Join(k.Addrs(), ","),
		"--redis-url", rs.URL(), "--http-addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "LEADCONV_TEST_AS_MAIN=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Ready: past the start-up wait for Redis and Kafka.
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving /metrics`)
	kafkatest.WaitFor(t, 30*time.Second, "the service to be ready", func() bool {
		m := addrRE.FindStringSubmatch(stderr.String())
		if m == nil {
			return false
		}
		code, _ := httpGet(t, "http://"+m[1]+"/readyz")
		return code == 200
	})
	http.DefaultClient.CloseIdleConnections()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("no exit within 30s of SIGTERM\n%s", stderr.String())
	}
	for _, want := range []string{"shutting down: draining in-flight batches", "leadconv stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, stderr.String())
		}
	}
}

// SIGTERM while a rebalance is pending stops the service within
// --drain-timeout and a small margin. Another member of the group holds
// the rebalance (it polled and never allows it), up to its rebalance
// timeout: leaving the group waited for that (37.8s in a trial).
func TestSIGTERMDuringPendingRebalanceIsBounded(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	rs := redistest.New(t)
	const drain, rebalance = 2 * time.Second, 20 * time.Second
	cmd, stderr := startService(t, "--brokers", strings.Join(k.Addrs(), ","), "--redis-url", rs.URL(), "--group", "held",
		"--drain-timeout", drain.String(), "--rebalance-timeout", rebalance.String())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kafkatest.WaitFor(t, 30*time.Second, "the partitions assigned", func() bool { return strings.Contains(stderr.String(), `"message":"partitions assigned"`) })

	others, abort := context.WithCancel(context.Background())
	defer abort() // their closes would wait for the rebalance too
	groupOpts := []kgo.Opt{kgo.WithContext(others), kgo.ConsumerGroup("held"), kgo.ConsumeTopics(defaultRecordsTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.HeartbeatInterval(100 * time.Millisecond), kgo.RebalanceTimeout(rebalance)}
	var assigned atomic.Bool
	b := k.Client(append(groupOpts, kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			assigned.Store(len(m[defaultRecordsTopic]) > 0)
		}))...)
	defer b.AllowRebalance() // its Close would hang on the rebalance it holds
	kafkatest.WaitFor(t, 30*time.Second, "the second member's assignment", func() bool {
		pctx, cancel := context.WithTimeout(others, 100*time.Millisecond)
		defer cancel()
		b.PollFetches(pctx)
		if !assigned.Load() {
			b.AllowRebalance()
			return false
		}
		return true
	})
	// A third member joins: the rebalance starts and the second holds it.
	c := k.Client(groupOpts...)
	go c.PollFetches(others)
	time.Sleep(time.Second)

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(rebalance):
		t.Fatalf("no exit within the %s rebalance timeout of SIGTERM\n%s", rebalance, stderr.String())
	}
	took := time.Since(start)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	if bound := drain + 4*time.Second; took > bound {
		t.Fatalf("exit %s after SIGTERM, over --drain-timeout %s and the margin", took, drain)
	}
}
