package main

import (
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

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
