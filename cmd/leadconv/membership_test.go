package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/requests"
)

// startService runs this test binary as "leadconv run" with args and
// returns the process and its stderr.
func startService(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	return startCommand(t, "run", args...)
}

// startCommand runs this test binary as "leadconv <name>" (a service:
// run, writer) with args and returns the process and its stderr.
func startCommand(t *testing.T, name string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	var stderr syncBuffer
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--", name, "--http-addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "LEADCONV_TEST_AS_MAIN=1")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &stderr
}

// kill -9 of a member with --instance-id: the restarted instance gets its
// partitions back at once, without waiting for the dead member's session
// to time out (franz-go's default of 45s stalled them that long).
func TestKilledStaticMemberResumesAtOnce(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	rs := redistest.New(t)
	cl := k.Client()
	adm := kadm.NewClient(cl)
	evs := gen.New(gen.Options{Seed: 5, Records: 120, ContactShare: 0.2}).Events()
	if err := produceEvents(t.Context(), cl, defaultRecordsTopic, evs[:60]); err != nil {
		t.Fatal(err)
	}
	const session = 30 * time.Second
	args := []string{"--brokers", strings.Join(k.Addrs(), ","), "--redis-url", rs.URL(), "--group", "static",
		"--instance-id", "leadconv-0", "--session-timeout", session.String()}
	first, stderr := startService(t, args...)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := waitCommitted(ctx, adm, "static", defaultRecordsTopic, nil); err != nil {
		t.Fatalf("first instance did not catch up: %v\n%s", err, stderr.String())
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// Described while dead: the member is still in the group under its
	// instance id, holding its partitions.
	groups, err := adm.DescribeGroups(ctx, "static")
	if err != nil {
		t.Fatal(err)
	}
	g := groups["static"]
	if len(g.Members) != 1 || g.Members[0].InstanceID == nil || *g.Members[0].InstanceID != "leadconv-0" {
		t.Fatalf("group members %+v, want the static member leadconv-0", g.Members)
	}

	if err := produceEvents(t.Context(), cl, defaultRecordsTopic, evs[60:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr2 := startService(t, args...)
	if err := waitCommitted(ctx, adm, "static", defaultRecordsTopic, nil); err != nil {
		t.Fatalf("restarted instance did not catch up: %v\n%s", err, stderr2.String())
	}
	took := time.Since(start)
	t.Logf("restarted static member caught up %s after its start", took.Round(time.Millisecond))
	if took >= session*2/3 {
		t.Fatalf("restarted member took %s, close to the %s session timeout: it waited for the dead member", took, session)
	}
	// Committed input is not yet commands: plans wait out their settle
	// window on the wall clock (2s by default), and the first instance
	// was killed inside its windows.
	kafkatest.WaitFor(t, 30*time.Second, "commands from the restarted instance", func() bool {
		return k.EndOffsets(defaultCommandsTopic) > 0
	})
}

func TestGroupFlagsChecked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--session-timeout", "100ms"}, "--session-timeout 100ms: allowed values are 1s to 30m0s"},
		{[]string{"--rebalance-timeout", "5s"}, "--rebalance-timeout 5s: must exceed --drain-timeout 10s"},
		{[]string{"--instance-id", " pod-0"}, `--instance-id " pod-0"`},
	} {
		for _, cmd := range [][]string{{"run"}, {"writer", "--postgres", "postgres://x"}} {
			if cmd[0] == "writer" && tc.args[0] == "--rebalance-timeout" {
				continue // the writer has no drain timeout
			}
			code, _, stderr := runMain(t, nil, append(cmd, tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v %v: code %d, %s", cmd, tc.args, code, stderr)
			}
		}
	}
	// The defaults, and the variables.
	fs := flagsOf(t, "run", map[string]string{"LEADCONV_INSTANCE_ID": "pod-3", "LEADCONV_SESSION_TIMEOUT": "12s"})
	if fs.Lookup("instance-id").Value.String() != "pod-3" || fs.Lookup("session-timeout").Value.String() != "12s" ||
		fs.Lookup("rebalance-timeout").Value.String() != defaultRebalanceTimeout.String() {
		t.Errorf("run: instance-id %s, session-timeout %s", fs.Lookup("instance-id").Value, fs.Lookup("session-timeout").Value)
	}
	if w := flagsOf(t, "writer", nil); w.Lookup("session-timeout").Value.String() != defaultSessionTimeout.String() {
		t.Errorf("writer --session-timeout default %s", w.Lookup("session-timeout").Value)
	}
}
