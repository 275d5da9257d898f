package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/looptest"
	"github.com/leadconv/leadconv/requests"
	"github.com/leadconv/leadconv/writer"
)

// The closed loop as deployed: "leadconv run" and "leadconv writer"
// processes with the shipped defaults (the generator's contact field names
// aside) over topics of three partitions, the pipeline reading the writer's
// results, records in a burst and a trickle (looptest.Feed). Each is killed
// with SIGKILL and restarted as a static member (its partitions come back
// at once): run while the records wait in their settle windows, the writer
// with commands it has not committed on the topic, then run again while its
// plans wait for the results of the writer, which stays down for two
// seconds of trickle. The CRM must end as in a steady run (looptest.Check):
// nothing refused, one lead.convert per converted lead, a command emitted
// again the same command, one live contact per cluster, merged duplicates
// gone, notes moved.
func TestClosedLoopKill9(t *testing.T) {
	t.Parallel()
	l := looptest.New(t, looptest.Options{Partitions: 3, Feedback: true, Hold: 3 * time.Second, Topics: looptest.Topics{
		Records: defaultRecordsTopic, ByTenant: pipeline.DefaultByTenantTopic, Commands: defaultCommandsTopic,
		Results: writer.DefaultResultsTopic, Requests: requests.DefaultRequestsTopic, DLQ: defaultDLQTopic,
	}})
	cfgPath := filepath.Join(t.TempDir(), "leadconv.yaml")
	if err := os.WriteFile(cfgPath, []byte(l.ConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(l.Kafka.Addrs(), ",")
	// The shipped defaults of run read the writer's results
	// (--command-results-topic leadconv.results).
	run := func() (*exec.Cmd, *syncBuffer) {
		return startCommand(t, "run", "--brokers", brokers, "--redis-url", l.Redis.URL(), "--namespace", l.Namespace,
			"--config", cfgPath, "--group", looptest.PipelineGroup, "--instance-id", "leadconv-0")
	}
	write := func() (*exec.Cmd, *syncBuffer) {
		return startCommand(t, "writer", "--brokers", brokers, "--postgres", l.DB.URL,
			"--group", looptest.WriterGroup, "--instance-id", "writer-0")
	}
	kill := func(name string, cmd *exec.Cmd) {
		t.Helper()
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", name, err)
		}
		_ = cmd.Wait()
	}
	pipe, pipeErr := run()
	wr, wrErr := write()
	for _, g := range []string{looptest.PipelineGroup, looptest.WriterGroup} {
		kafkatest.WaitFor(t, 30*time.Second, g+" to join its group", func() bool {
			gs, err := l.Adm.DescribeGroups(t.Context(), g)
			return err == nil && gs[g].State == "Stable" && len(gs[g].Members) > 0
		})
	}
	sets := looptest.Sets()
	var routedAtKill, commandsAtKill, uncommittedAtKill, awaitingAtKill int64
	l.Feed(sets, func(group int) {
		switch group {
		case 4:
			// 1.5s after the burst, less than a settle window: the burst's
			// clusters and the trickled ones wait in their windows, durable
			// once their by-tenant offsets are committed.
			kafkatest.WaitFor(t, 20*time.Second, "the pipeline to commit owned records", func() bool {
				return l.Committed(looptest.PipelineGroup, pipeline.DefaultByTenantTopic) > 0
			})
			routedAtKill, commandsAtKill = l.Committed(looptest.PipelineGroup, pipeline.DefaultByTenantTopic), l.End(defaultCommandsTopic)
			kill("run", pipe)
			pipe, pipeErr = run()
		case 6:
			// The burst's commands come out as its settle windows close.
			kafkatest.WaitFor(t, 20*time.Second, "commands the writer has not committed", func() bool {
				return l.End(defaultCommandsTopic) > l.Committed(looptest.WriterGroup, defaultCommandsTopic)+2
			})
			uncommittedAtKill = l.End(defaultCommandsTopic) - l.Committed(looptest.WriterGroup, defaultCommandsTopic)
			kill("writer", wr)
		case 9:
			// Again, with emitted plans waiting for their results and the
			// trickle's windows open.
			awaitingAtKill = l.End(defaultCommandsTopic) - l.Committed(looptest.PipelineGroup, writer.DefaultResultsTopic)
			kill("run", pipe)
			pipe, pipeErr = run()
		case 12:
			// The writer was down for two seconds of trickle: results and
			// echoes come late while clusters keep growing.
			wr, wrErr = write()
		}
	})
	l.Quiet()
	t.Logf("killed run with %d owned records committed and %d commands out, the writer with %d commands uncommitted, run again with %d commands without a committed result",
		routedAtKill, commandsAtKill, uncommittedAtKill, awaitingAtKill)
	l.Check(sets)
	if t.Failed() {
		t.Logf("run:\n%s\nwriter:\n%s", pipeErr.String(), wrErr.String())
	}
}
