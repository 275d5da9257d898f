package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/certtest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

// Every command that talks to Kafka takes the TLS and SASL settings from
// flags and variables: with the right ones it works, with a wrong password
// it stops at once naming the broker and the cause, and the password is in
// no output.
func TestKafkaSecurityEveryCommand(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "kafka")
	srv := ca.Server("broker", "127.0.0.1")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, defaultRecordsTopic, pipeline.DefaultByTenantTopic, defaultCommandsTopic, defaultDLQTopic),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "leadconv", "right-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	broker := c.ListenAddrs()[0]
	rs := redistest.New(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("right-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	vars := func(pw string) map[string]string {
		return map[string]string{
			"LEADCONV_REDIS_URL": rs.URL(), "LEADCONV_KAFKA_TLS_CA_FILE": ca.CAFile,
			"LEADCONV_SASL_MECHANISM": "SCRAM-SHA-512", "LEADCONV_SASL_USERNAME": "leadconv", "LEADCONV_SASL_PASSWORD": pw,
		}
	}
	code, stdout, stderr := runMain(t, vars("wrong-pw"), "replay", "--brokers", broker, "--from", "earliest", "--dry-run", "--sasl-password-file", pwFile)
	if code != exitOK || stdout != "" {
		t.Fatalf("replay with the password file: code %d, stdout %q, stderr %s", code, stdout, stderr)
	}

	for _, args := range [][]string{
		{"run", "--http-addr", "127.0.0.1:0"},
		{"replay", "--from", "earliest", "--dry-run"},
		{"writer", "--postgres", "postgres://127.0.0.1:1/crm"},
		{"bench", "--redis-url", rs.URL()},
	} {
		code, stdout, stderr := runMain(t, vars("wrong-pw"), append(args, "--brokers", broker, "--log-format", "json")...)
		want := "kafka broker " + broker + `: SASL SCRAM-SHA-512 authentication of user "leadconv" failed`
		if code != exitError || !strings.Contains(stderr, want) {
			t.Errorf("%s with a wrong password: code %d, stderr %q, want %q", args[0], code, stderr, want)
		}
		if strings.Contains(stdout+stderr, "wrong-pw") {
			t.Errorf("%s prints the password", args[0])
		}
	}

	v := vars("right-pw")
	delete(v, "LEADCONV_KAFKA_TLS_CA_FILE")
	v["LEADCONV_KAFKA_TLS"] = "true"
	code, _, stderr = runMain(t, v, "run", "--brokers", broker, "--http-addr", "127.0.0.1:0")
	if code != exitError || !strings.Contains(stderr, "kafka broker "+broker+": TLS: the server's certificate is not signed by a trusted CA") {
		t.Errorf("run without the CA: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = runMain(t, map[string]string{"LEADCONV_REDIS_URL": rs.URL()}, "run", "--brokers", broker, "--sasl-mechanism", "KERBEROS", "--sasl-username", "u", "--sasl-password", "p")
	if code != exitUsage || !strings.Contains(stderr, "allowed values are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512") {
		t.Errorf("run with an unknown mechanism: code %d, stderr %q", code, stderr)
	}
}
