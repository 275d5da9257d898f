package main

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/requests"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Redis and the broker both unreachable at start: run waits for them,
// logs each with its address every few seconds, answers /readyz with what
// is missing, and starts processing once they are up.
func TestRunWaitsForRedisAndKafkaAtStart(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t)
	rs.Kill()
	port := freePort(t)
	broker := "127.0.0.1:" + strconv.Itoa(port)

	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--brokers", broker, "--redis-url", rs.URL(), "--http-addr", "127.0.0.1:0", "--log-format", "json", "--group", "late"}, e)
	}()
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving /metrics`)
	var base string
	kafkatest.WaitFor(t, 20*time.Second, "the ops server", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	waiting := func(dep, addr string) int {
		re := regexp.MustCompile(`"dependency":"` + dep + `","addr":"` + regexp.QuoteMeta(addr) + `"[^\n]*"message":"waiting for a dependency at start-up; retrying"`)
		return len(re.FindAllString(stderr.String(), -1))
	}
	redisAddr := rs.Options().Addr
	// Logged at once, then again every few seconds.
	kafkatest.WaitFor(t, 5*time.Second, "the first waiting logs", func() bool { return waiting("redis", redisAddr) >= 1 && waiting("kafka", broker) >= 1 })
	code, body := httpGet(t, base+"/readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready: starting\n") || !strings.Contains(body, "\nkafka: ") || !strings.Contains(body, "\nredis: ") {
		t.Fatalf("/readyz while waiting = %d %q, want 503 naming kafka and redis", code, body)
	}
	kafkatest.WaitFor(t, 3*ops.LogEvery, "repeated waiting logs", func() bool { return waiting("redis", redisAddr) >= 2 && waiting("kafka", broker) >= 2 })
	select {
	case c := <-done:
		t.Fatalf("run exited (%d) while waiting:\n%s", c, stderr.String())
	default:
	}

	// Both come up: run proceeds and processes the stream.
	rs.Restart()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := produceEvents(ctx, cl, defaultRecordsTopic, gen.New(gen.Options{Seed: 2, Records: 40}).Events()); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := waitCommitted(wctx, kadm.NewClient(cl), "late", defaultRecordsTopic, nil); err != nil {
		t.Fatalf("no progress once the dependencies came up: %v\n%s", err, stderr.String())
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after start = %d %q", code, body)
	}
	if !strings.Contains(stderr.String(), `"message":"dependency reachable"`) {
		t.Errorf("no log of the dependencies becoming reachable")
	}
	cancel()
	awaitExitOK(t, done, &stderr, "run")
}

// Interrupted while still waiting: a clean, prompt stop.
func TestRunStopsWhileWaitingAtStart(t *testing.T) {
	t.Parallel()
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--brokers", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--redis-url", "redis://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/0",
			"--http-addr", "127.0.0.1:0", "--log-format", "json"}, e)
	}()
	kafkatest.WaitFor(t, 10*time.Second, "the waiting log", func() bool { return strings.Contains(stderr.String(), "waiting for a dependency") })
	cancel()
	select {
	case c := <-done:
		if c != exitOK || !strings.Contains(stderr.String(), "shutting down: stopped while waiting for dependencies") {
			t.Fatalf("exit %d\n%s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop while waiting")
	}
}

// A topic run needs that does not exist (here the mass-conversion results
// topic) is waited for: /readyz names it, the wait is logged with it, and
// run proceeds once it is created. It used to run, green, while every
// request stalled.
func TestRunWaitsForMissingTopics(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic)
	rs := redistest.New(t)
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--brokers", strings.Join(k.Addrs(), ","), "--redis-url", rs.URL(), "--http-addr", "127.0.0.1:0",
			"--log-format", "json", "--group", "topics"}, e)
	}()
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving /metrics`)
	var base string
	kafkatest.WaitFor(t, 20*time.Second, "the ops server", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	const missing = "topic " + requests.DefaultEventsTopic + " (mass-conversion results, --results-topic): not found"
	kafkatest.WaitFor(t, 10*time.Second, "the waiting log naming the topic", func() bool {
		return strings.Contains(stderr.String(), `"dependency":"topics"`) && strings.Contains(stderr.String(), missing)
	})
	code, body := httpGet(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "\ntopics: ") || !strings.Contains(body, missing) {
		t.Fatalf("/readyz while the topic is missing = %d %q, want 503 naming it", code, body)
	}
	// Waiting, it holds no partitions the group could give another member.
	adm := kadm.NewClient(k.Client())
	if groups, err := adm.DescribeGroups(ctx, "topics"); err == nil && len(groups["topics"].Members) != 0 {
		t.Fatalf("members %+v while waiting, want none", groups["topics"].Members)
	}

	if _, err := adm.CreateTopic(ctx, 2, 1, nil, requests.DefaultEventsTopic); err != nil {
		t.Fatal(err)
	}
	if err := produceEvents(ctx, k.Client(), defaultRecordsTopic, gen.New(gen.Options{Seed: 3, Records: 20}).Events()); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := waitCommitted(wctx, adm, "topics", defaultRecordsTopic, nil); err != nil {
		t.Fatalf("no progress once the topic exists: %v\n%s", err, stderr.String())
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after start = %d %q", code, body)
	}
	cancel()
	awaitExitOK(t, done, &stderr, "run")
}

// A dead-letter topic too small for --max-record-bytes stops start-up,
// naming the flag, the topic and both values.
func TestRunRefusesRecordLimitOverTheDeadLetterTopic(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 1, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	v := "500000"
	res, err := kadm.NewClient(k.Client()).AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, defaultDLQTopic)
	if err == nil {
		_, err = res.On(defaultDLQTopic, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.New(t)
	// The group's client logs from its own goroutines: a synchronised
	// buffer, not runMain's.
	var stderr syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	code := Main(t.Context(), []string{"run", "--brokers", strings.Join(k.Addrs(), ","), "--redis-url", rs.URL(), "--http-addr", "127.0.0.1:0", "--log-format", "json"}, e)
	want := "--max-record-bytes 983040 exceeds what topic " + defaultDLQTopic + " takes (max.message.bytes 500000): at most 495904"
	if code != exitError || !strings.Contains(stderr.String(), want) {
		t.Fatalf("code %d, stderr %s, want %q", code, stderr.String(), want)
	}
}
