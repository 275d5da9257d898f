package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/writer"
)

// The reference writer serves /metrics, /healthz and /readyz as run does:
// it waits for a broker that is not up yet (logging its address), is ready
// once connected and migrated, exports the build and franz-go client
// metrics, and stops cleanly.
func TestWriterServesOps(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	// The broker comes up after the writer started.
	port := freePort(t)
	broker := "127.0.0.1:" + strconv.Itoa(port)
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vars := map[string]string{"LEADCONV_POSTGRES": db.URL, "LEADCONV_WRITER_HTTP_ADDR": "127.0.0.1:0", "LEADCONV_LOG_FORMAT": "json"}
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"writer", "--brokers", broker}, e) }()
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"serving /metrics`)
	var base string
	kafkatest.WaitFor(t, 20*time.Second, "the ops server", func() bool {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	kafkatest.WaitFor(t, 10*time.Second, "the waiting log", func() bool {
		return strings.Contains(stderr.String(), `"dependency":"kafka","addr":"`+broker+`"`)
	})
	if code, body := httpGet(t, base+"/readyz"); code != 503 || !strings.Contains(body, "writer: starting") {
		t.Fatalf("/readyz while waiting for the broker = %d %q", code, body)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(2, defaultCommandsTopic, defaultRecordsTopic, writer.DefaultResultsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	kafkatest.WaitFor(t, 30*time.Second, "/readyz 200", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == 200
	})
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{`leadconv_build_info{`, `leadconv_kafka_connects_total{client_id="leadconv-writer"`, `process_resident_memory_bytes`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	awaitExitOK(t, done, &stderr, "writer")
}
