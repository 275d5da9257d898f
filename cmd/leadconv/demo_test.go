package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/record"
)

// The demo runs to completion on its embedded default and reports what it
// converts and merges, with a total that matches the sample.
func TestDemoRunsToCompletion(t *testing.T) {
	t.Parallel()
	start := time.Now()
	code, stdout, stderr := runMain(t, nil, "demo", "--records", "200", "--show", "3")
	if code != exitOK {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Errorf("demo took %s, want well under a minute", d)
	}
	m := regexp.MustCompile(`Processed (\d+) events in .*: (\d+) commands \((.*)\), 0 dead letters\.`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no summary line:\n%s", stdout)
	}
	if m[1] == "0" || m[2] == "0" || !strings.Contains(m[3], "lead.convert") || !strings.Contains(m[3], "records.merge") {
		t.Fatalf("summary %q: want events, lead.convert and records.merge commands", m[0])
	}
	for _, want := range []string{"duplicate clusters hold", "\ncluster ", " convert lead-", "new account", "more clusters"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if n := strings.Count(stdout, "\ncluster "); n != 3 {
		t.Errorf("--show 3 printed %d clusters", n)
	}
	// The logs (stderr) carry no names or e-mail addresses.
	if strings.Contains(stderr, "@") {
		t.Errorf("stderr carries an e-mail address:\n%s", stderr)
	}
}

// With a real Redis the demo works under a fresh namespace, deletes it
// afterwards, and plans the same commands as on the embedded one (on one
// partition: across partitions the interleaving, and with it cluster ids
// and versions, may differ from run to run).
func TestDemoOnRealRedisLeavesNoKeys(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	code, onReal, stderr := runMain(t, map[string]string{"REDIS_URL": srv.URL()}, "demo", "--records", "120", "--show", "2", "--partitions", "1")
	if code != exitOK {
		t.Fatalf("code %d\n%s\n%s", code, onReal, stderr)
	}
	if !strings.Contains(onReal, "namespace demo") {
		t.Errorf("output does not name the namespace:\n%s", onReal)
	}
	if n, err := srv.Client().DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("redis holds %d keys after the demo (err %v)", n, err)
	}
	_, embedded, _ := runMain(t, nil, "demo", "--records", "120", "--show", "2", "--partitions", "1")
	if a, b := planLines(onReal), planLines(embedded); a != b {
		t.Errorf("plans differ between real and embedded Redis:\n%s\n---\n%s", a, b)
	}
}

// planLines drops the lines that name addresses and timings.
func planLines(out string) string {
	var keep []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "Kafka") || strings.HasPrefix(line, "Processed") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "")
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// awaitExitOK waits up to 30 s for a command started with Main in a
// goroutine to return on done, and fails unless it exited 0.
func awaitExitOK(t *testing.T, done <-chan int, stderr *syncBuffer, what string) {
	t.Helper()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s", what, code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop", what)
	}
}

// --serve keeps the broker up for other clients and prints the commands
// their events cause; SIGINT (a cancelled context) stops it cleanly.
func TestDemoServe(t *testing.T) {
	t.Parallel()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"demo", "--records", "50", "--serve"}, e) }()

	addrRE := regexp.MustCompile(`Serving: Kafka broker at (\S+)`)
	var addr string
	kafkatest.WaitFor(t, 30*time.Second, "the broker address", func() bool {
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})

	// Two new leads of one new person: a cluster the sample never had.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"web-1", "web-2"} {
		ev := record.Event{Record: record.Record{Tenant: "acme", Object: record.Lead, ID: id,
			CreatedAt: at, ModifiedAt: at.Add(time.Duration(i) * time.Second),
			Fields: record.Fields{"FirstName": "Quentin", "LastName": "Zabriskie", "Email": "q.zabriskie@example.org",
				"Company": "Zabriskie Point LLC", "Phone": "555-010-0199"}}, Op: record.OpUpsert}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: defaultRecordsTopic, Key: []byte("acme/lead/" + id), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	kafkatest.WaitFor(t, 30*time.Second, "the served pipeline to convert web-2", func() bool {
		return strings.Contains(stdout.String(), "convert web-2")
	})
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("code %d after interrupt\n%s\n%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo --serve did not stop after the interrupt")
	}
}

func TestDemoUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--records", "0"}, "--records 0"},
		{[]string{"--contacts", "2"}, "--contacts 2"},
		{[]string{"--kafka-port", "70000"}, "--kafka-port"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		code, _, stderr := runMain(t, nil, append([]string{"demo"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("demo %v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}

// TestDemoCRM: demo --crm salesforce runs on Salesforce-shaped records and
// prints the conversions' fields in Salesforce's names: contact fields only
// on the contact, account fields only on the account. Twenty clusters are
// shown: with prefer_existing_contact many convert into an existing contact,
// which prints no contact fields.
func TestDemoCRM(t *testing.T) {
	code, stdout, stderr := runMain(t, nil, "demo", "--crm", "salesforce", "--records", "200", "--show", "20")
	if code != exitOK {
		t.Fatalf("code %d: %s", code, stderr)
	}
	var contact, account string
	for line := range strings.Lines(stdout) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "salesforce contact fields: "); ok && contact == "" {
			contact = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "salesforce account fields: "); ok && account == "" {
			account = v
		}
	}
	if !strings.Contains(contact, "MailingCity") || !strings.Contains(contact, "FirstName") {
		t.Errorf("contact fields %q: want Salesforce contact names", contact)
	}
	for _, lead := range []string{"Company", "Status", "Website", "City", "CreatedDate"} {
		if slices.Contains(strings.Split(contact, ", "), lead) {
			t.Errorf("contact fields %q hold the lead's %s", contact, lead)
		}
	}
	if !strings.HasPrefix(account, "Name") || !strings.Contains(account, "BillingCity") {
		t.Errorf("account fields %q: want Name and Salesforce account names", account)
	}
	for _, person := range []string{"FirstName", "LastName", "Email", "Title"} {
		if slices.Contains(strings.Split(account, ", "), person) {
			t.Errorf("account fields %q hold the person's %s", account, person)
		}
	}
	if code, _, stderr := runMain(t, nil, "demo", "--crm", "salesforce", "--config", "../../examples/zoho.yaml"); code != exitUsage || !strings.Contains(stderr, `crm "zoho"`) {
		t.Errorf("--crm salesforce with a zoho config: code %d %q", code, stderr)
	}
}
