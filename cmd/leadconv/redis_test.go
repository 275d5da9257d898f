package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/certtest"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/requests"
)

// leastPrivilegeACL is the Redis ACL of leadconv's user for namespace lc,
// as README.md documents it: the namespace's keys and the commands leadconv
// sends (and its scripts call), nothing else.
const leastPrivilegeACL = "on resetkeys ~lc:* resetchannels -@all +ping +hello +cluster|slots +multi +exec +watch +unwatch +client|setname +incr +get +hget +hmget +hgetall +hlen +hscan +hset +hsetnx +hdel +sadd +smembers"

// The service runs with a Redis ACL user that may touch only its
// namespace's keys with only the commands it needs: everything works, and
// anything else is refused.
func TestRunWithLeastPrivilegeRedisUser(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "ACL SETUSER leadconv "+leastPrivilegeACL+" >") {
		t.Errorf("README.md does not document the ACL the test proves: ACL SETUSER leadconv %s >...", leastPrivilegeACL)
	}
	rs := redistest.New(t)
	ctx := context.Background()
	admin := rs.Client()
	if err := admin.Do(ctx, append([]any{"ACL", "SETUSER", "leadconv"}, fieldsAny(leastPrivilegeACL+" >lc-pw")...)...).Err(); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "redis-pw")
	if err := os.WriteFile(pw, []byte("lc-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(rs.URL(), "unix://", "unix://leadconv@", 1)

	k := kafkatest.New(t, 2, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, requests.DefaultRequestsTopic, requests.DefaultEventsTopic)
	evs := gen.New(gen.Options{Seed: 5, Records: 150, ContactShare: 0.2}).Events()
	if err := produceEvents(ctx, k.Client(), defaultRecordsTopic, evs); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := &env{stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &stderr, getenv: func(k string) string {
		return map[string]string{"LEADCONV_REDIS_URL": url, "LEADCONV_REDIS_PASSWORD_FILE": pw, "LEADCONV_LOG_FORMAT": "json",
			"LEADCONV_CONFIG": tokenConfig(t), testTokenEnv: testTokenSecret, "LEADCONV_MASS_CONVERT_ROLES": "sales_admin"}[k]
	}}
	done := make(chan int, 1)
	go func() {
		done <- Main(runCtx, []string{"run", "--brokers", strings.Join(k.Addrs(), ","), "--http-addr", "127.0.0.1:0", "--group", "acl"}, e)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := waitCommitted(wctx, kadm.NewClient(k.Client()), "acl", defaultRecordsTopic, nil); err != nil {
		t.Fatalf("the service did not catch up as the ACL user: %v\n%s", err, stderr.String())
	}
	if n := k.EndOffsets(defaultCommandsTopic); n == 0 {
		t.Errorf("no commands published")
	}
	// A mass conversion by filter: the stored leads are scanned, the
	// request ledger written and read.
	k.Produce(signedRequest(t, `{"tenant":"acme","request_id":"acl-1","select":{"created_after":"2000-01-01T00:00:00Z"}}`, "sales_admin"))
	kafkatest.WaitFor(t, 30*time.Second, "request.completed", func() bool {
		for _, r := range k.ReadAll(requests.DefaultEventsTopic) {
			if typ := string(kafkatest.Header(r, "ce_type")); typ == requests.TypeCompleted {
				return true
			} else if typ == requests.TypeRejected {
				t.Fatalf("request rejected: %s", r.Value)
			}
		}
		return false
	})
	if n := k.EndOffsets(defaultDLQTopic); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit code %d\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "NOPERM") {
		t.Errorf("a command was refused:\n%s", stderr.String())
	}

	// Least privilege: other keys and other commands are refused.
	user := redis.NewClient(&redis.Options{Network: "unix", Addr: rs.Options().Addr, Username: "leadconv", Password: "lc-pw"})
	defer user.Close()
	for name, err := range map[string]error{
		"GET outside the namespace":  user.Get(ctx, "other:{acme}:r").Err(),
		"HGET outside the namespace": user.HGet(ctx, "lc2:{acme}:r", "x").Err(),
		"KEYS":                       user.Keys(ctx, "*").Err(),
		"FLUSHALL":                   user.FlushAll(ctx).Err(),
		"CONFIG SET":                 user.ConfigSet(ctx, "maxmemory", "1").Err(),
		"EVAL of an ad-hoc script":   user.Eval(ctx, "return 1", []string{"lc:{acme}:r"}).Err(),
	} {
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s: error %v, want NOPERM", name, err)
		}
	}
}

func fieldsAny(s string) []any {
	var out []any
	for _, f := range strings.Fields(s) {
		out = append(out, f)
	}
	return out
}

// replay reaches Redis as the URL and the TLS variables say: a TLS server
// with its CA, and a Redis Cluster, whose throwaway namespace it removes
// from every master.
func TestReplayRedisTopologies(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "redis")
	srv := ca.Server("redis", "127.0.0.1")
	tlsSrv := redistest.NewTLS(t, redistest.TLSFiles{CertFile: srv.CertFile, KeyFile: srv.KeyFile})
	cs := redistest.NewCluster(t, 3)
	k := kafkatest.New(t, 3, defaultRecordsTopic, pipeline.DefaultByTenantTopic, defaultCommandsTopic)
	evs := gen.New(gen.Options{Seed: 9, Records: 60, ContactShare: 0.2}).Events()
	// Replay reads what the live service routed to the by-tenant topic,
	// keyed by tenant.
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		k.Produce(&kgo.Record{Topic: pipeline.DefaultByTenantTopic, Key: []byte(ev.Tenant), Value: b})
	}
	args := []string{"replay", "--brokers", k.Addrs()[0], "--from", "earliest", "--dry-run"}
	for name, vars := range map[string]map[string]string{
		"rediss with CA": {"LEADCONV_REDIS_URL": "rediss://" + tlsSrv.Addr, "LEADCONV_REDIS_TLS_CA_FILE": ca.CAFile},
		"cluster":        {"LEADCONV_REDIS_URL": cs.URL()},
	} {
		code, stdout, stderr := runMain(t, vars, args...)
		if code != exitOK || !strings.Contains(stdout, `"type":"io.leadconv.`) {
			t.Errorf("%s: code %d, stderr %s", name, code, stderr)
		}
	}
	code, _, stderr := runMain(t, map[string]string{"LEADCONV_REDIS_URL": "rediss://" + tlsSrv.Addr}, args...)
	if code != exitError || !strings.Contains(stderr, "redis single "+tlsSrv.Addr+": TLS: the server's certificate is not signed by a trusted CA") {
		t.Errorf("without the CA: code %d, stderr %q", code, stderr)
	}
	for _, n := range cs.Nodes {
		if keys, err := n.Client().Keys(context.Background(), "dryrun*").Result(); err != nil || len(keys) != 0 {
			t.Errorf("a master keeps %d throwaway keys (%v)", len(keys), err)
		}
	}
}
