package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/requests"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The service processes the stream, serves its operations endpoints with
// the documented metrics, logs ids only, and on interrupt drains, commits
// and exits cleanly.
func TestRunServesOpsAndShutsDownGracefully(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 3, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	rs := redistest.New(t)
	evs := gen.New(gen.Options{Seed: 3, Records: 200, ContactShare: 0.2}).Events()
	cl := k.Client()
	if err := produceEvents(t.Context(), cl, defaultRecordsTopic, evs); err != nil {
		t.Fatal(err)
	}
	k.Produce(&kgo.Record{Topic: defaultRecordsTopic, Value: []byte("not json")})

	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string {
		return map[string]string{"LEADCONV_REDIS_URL": rs.URL(), "LEADCONV_LOG_FORMAT": "json",
			"LEADCONV_CONFIG": tokenConfig(t), testTokenEnv: testTokenSecret}[k]
	}}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--brokers", strings.Join(k.Addrs(), ","), "--http-addr", "127.0.0.1:0", "--group", "svc", "--mass-convert-roles", "sales_admin"}, e)
	}()

	addrRE := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving /metrics`)
	var base string
	kafkatest.WaitFor(t, 20*time.Second, "the ops server", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	adm := kadm.NewClient(cl)
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	for _, topic := range []string{defaultRecordsTopic, pipeline.DefaultByTenantTopic} {
		if err := waitCommitted(wctx, adm, "svc", topic, nil); err != nil {
			t.Fatalf("the service did not catch up on %s: %v\n%s", topic, err, stderr.String())
		}
	}
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`leadconv_events_in_total{object="lead",op="upsert"}`,
		`leadconv_commands_out_total{type="io.leadconv.lead.convert.v1"}`,
		`leadconv_dlq_records_total`,
		`leadconv_processing_latency_seconds_bucket`,
		`leadconv_consumer_lag`,
		`leadconv_partitions_retrying 0`,
		`leadconv_matcher_redis_round_trip_seconds_bucket`,
		`leadconv_matcher_batch_round_trips_bucket`,
		`leadconv_matcher_resident_bytes`,
		`leadconv_events_routed_total`,
		`process_resident_memory_bytes`,
		`leadconv_build_info{commit=`,
		// franz-go's client metrics, for the pipeline's client (which
		// reads the requests too).
		`leadconv_kafka_connects_total{client_id="leadconv",node_id="0"}`,
		`leadconv_kafka_fetch_bytes_total{client_id="leadconv",`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if k.EndOffsets(defaultDLQTopic) != 1 {
		t.Errorf("the poison record did not reach the dead-letter topic")
	}
	http.DefaultClient.CloseIdleConnections()

	// Mass conversion runs beside the pipeline, over the leads it stored:
	// a dry run of two leads by id, and a request whose token holds no
	// permitted role (whatever its body claims).
	var leads []string
	for _, ev := range evs {
		if ev.Object == "lead" && len(leads) < 2 {
			leads = append(leads, ev.ID)
		}
	}
	k.Produce(
		signedRequest(t, `{"tenant":"acme","request_id":"r1","select":{"ids":["`+leads[0]+`","`+leads[1]+`"]},"dry_run":true}`, "sales_admin"),
		signedRequest(t, `{"tenant":"acme","request_id":"r2","requested_by":{"user":"u2","roles":["sales_admin"]},"select":{"ids":["`+leads[0]+`"]}}`, "intern"),
	)
	results := map[string]map[string]any{}
	kafkatest.WaitFor(t, 30*time.Second, "the requests' results", func() bool {
		for _, r := range k.ReadAll(requests.DefaultEventsTopic) {
			typ := string(kafkatest.Header(r, "ce_type"))
			if strings.Contains(typ, "completed") || strings.Contains(typ, "rejected") {
				var data map[string]any
				if err := json.Unmarshal(r.Value, &data); err != nil {
					t.Fatalf("%s: %v", typ, err)
				}
				results[typ] = data
			}
		}
		return len(results) == 2
	})
	for typ, data := range results {
		switch {
		case strings.Contains(typ, "completed"):
			if data["request_id"] != "r1" || data["selected"] != float64(2) {
				t.Errorf("%s = %v, want request r1 with 2 selected", typ, data)
			}
		case !strings.Contains(fmt.Sprint(data), "role_not_allowed"):
			t.Errorf("%s = %v, want role_not_allowed", typ, data)
		}
	}

	cancel()
	awaitExitOK(t, done, &stderr, "run")
	logs := stderr.String()
	for _, want := range []string{`"message":"leadconv starting"`, `"message":"shutting down: draining in-flight batches"`, `"message":"leadconv stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	// Ids only: no name or e-mail of the generated people in the logs.
	for _, ev := range evs[:50] {
		for _, f := range []string{"Email", "LastName"} {
			if v := ev.Fields.Str(f); len(v) > 3 && strings.Contains(logs, v) {
				t.Fatalf("logs carry %s %q", f, v)
			}
		}
	}
}

func TestRunFailsFastOnBadSetup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--group", ""}, exitUsage, "--group"},
		{[]string{"--drain-timeout", "0s"}, exitUsage, "--drain-timeout"},
		{[]string{"--redis-url", "mysql://127.0.0.1:1/0"}, exitUsage, "--redis-url"},
		{[]string{"--config", "/nonexistent/leadconv.yaml"}, exitError, "leadconv.yaml"},
		{[]string{"--input-keyed-by-tenant"}, exitUsage, "--command-results-topic"},
	} {
		code, _, stderr := runMain(t, nil, append([]string{"run", "--log-format", "json"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("run %v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}

func TestTenantPolicy(t *testing.T) {
	flags := requests.Policy{Roles: []string{"admin"}, MaxRecords: 100, MaxNewRecords: 50}
	tests := []struct {
		name string
		mc   config.MassConversion
		want requests.Policy
	}{
		{"unset: the flags", config.MassConversion{}, flags},
		{"roles replace", config.MassConversion{Roles: []string{"ops"}}, requests.Policy{Roles: []string{"ops"}, MaxRecords: 100, MaxNewRecords: 50}},
		{"empty roles: nobody", config.MassConversion{Roles: []string{}}, requests.Policy{Roles: []string{}, MaxRecords: 100, MaxNewRecords: 50}},
		{"limits", config.MassConversion{MaxRecordsPerRequest: 7, MaxNewRecordsPerRequest: 3}, requests.Policy{Roles: []string{"admin"}, MaxRecords: 7, MaxNewRecords: 3}},
	}
	for _, tc := range tests {
		if got := tenantPolicy(flags, tc.mc); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// Redis comes back empty under a group with committed offsets: the
// restarted service applies nothing, says so in one log line, and /readyz
// names the loss and the command that rebuilds the namespace.
func TestRunReadyzNamesStateLoss(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	rs := redistest.New(t)
	cl := k.Client()
	run := func(evs []record.Event) (string, *syncBuffer, func()) { return runService(t, k, rs, evs) }
	_, stderr, stop := run(gen.New(gen.Options{Seed: 3, Records: 100}).Events())
	wctx, wcancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer wcancel()
	for _, topic := range []string{defaultRecordsTopic, pipeline.DefaultByTenantTopic} {
		if err := waitCommitted(wctx, kadm.NewClient(cl), "svc", topic, nil); err != nil {
			t.Fatalf("the service did not catch up on %s: %v\n%s", topic, err, stderr.String())
		}
	}
	stop()
	if err := rs.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	base, stderr, stop := run(gen.New(gen.Options{Seed: 4, Records: 50}).Events())
	var body string
	kafkatest.WaitFor(t, 30*time.Second, "/readyz naming the loss", func() bool {
		var code int
		code, body = httpGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "state: ")
	})
	if !strings.Contains(body, matcher.RebuildCommand("lc")) {
		t.Fatalf("/readyz does not name the rebuild command:\n%s", body)
	}
	stop()
	if n := strings.Count(stderr.String(), "matcher state lost: not applying"); n != 1 {
		t.Fatalf("%d state-loss log lines, want 1\n%s", n, stderr.String())
	}
}

// runService produces evs, then starts leadconv run on k and rs, returning
// the ops server's base URL, its log and a stop that checks the exit.
func runService(t *testing.T, k *kafkatest.Cluster, rs *redistest.Server, evs []record.Event) (base string, stderr *syncBuffer, stop func()) {
	t.Helper()
	cl := k.Client()
	if err := produceEvents(t.Context(), cl, defaultRecordsTopic, evs); err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: stderr, getenv: func(k string) string {
		return map[string]string{"LEADCONV_REDIS_URL": rs.URL(), "LEADCONV_LOG_FORMAT": "json"}[k]
	}}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--brokers", strings.Join(k.Addrs(), ","), "--http-addr", "127.0.0.1:0", "--group", "svc"}, e)
	}()
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving /metrics`)
	kafkatest.WaitFor(t, 20*time.Second, "the ops server", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if code := <-done; code != exitOK {
				t.Errorf("run exited %d\n%s", code, stderr.String())
			}
			http.DefaultClient.CloseIdleConnections()
		})
	}
	t.Cleanup(stop)
	return base, stderr, stop
}

// A Redis outage mid-stream: the owners' batches are retried, and /readyz
// names each partition retrying with its code until Redis is back; then
// it is ready again and every record is processed.
func TestRunReadyzNamesRetryingPartition(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	// With AOF: Redis comes back with its data (an empty one is state loss).
	rs := redistest.New(t, "--appendonly", "yes", "--appendfsync", "always")
	base, stderr, stop := runService(t, k, rs, gen.New(gen.Options{Seed: 3, Records: 100}).Events())
	adm := kadm.NewClient(k.Client())
	caughtUp := func() {
		t.Helper()
		wctx, wcancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer wcancel()
		for _, topic := range []string{defaultRecordsTopic, pipeline.DefaultByTenantTopic} {
			if err := waitCommitted(wctx, adm, "svc", topic, nil); err != nil {
				t.Fatalf("the service did not catch up on %s: %v\n%s", topic, err, stderr.String())
			}
		}
	}
	caughtUp()
	rs.Kill()
	if err := produceEvents(t.Context(), k.Client(), defaultRecordsTopic, gen.New(gen.Options{Seed: 4, Records: 50}).Events()); err != nil {
		t.Fatal(err)
	}
	var body string
	kafkatest.WaitFor(t, 30*time.Second, "/readyz naming the retrying partition", func() bool {
		var code int
		code, body = httpGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "partitions: partition "+pipeline.DefaultByTenantTopic+"/")
	})
	if !strings.Contains(body, "(redis_unavailable)") {
		t.Fatalf("/readyz does not name the code:\n%s", body)
	}
	rs.Restart()
	caughtUp()
	kafkatest.WaitFor(t, 30*time.Second, "/readyz ready again", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == http.StatusOK
	})
	stop()
	if !strings.Contains(stderr.String(), "partition recovered") {
		t.Fatalf("no recovery logged\n%s", stderr.String())
	}
}
