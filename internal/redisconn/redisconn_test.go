package redisconn_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/internal/testutil/certtest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/internal/tlsfile"
)

func open(t *testing.T, o redisconn.Options) (redis.UniversalClient, redisconn.Topology) {
	t.Helper()
	c, topo, err := o.Open(context.Background())
	if err != nil {
		t.Fatalf("Open(%s): %v", o.URL, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, topo
}

func openFails(t *testing.T, o redisconn.Options, want ...string) {
	t.Helper()
	c, _, err := o.Open(context.Background())
	if err == nil {
		_ = c.Close()
		t.Fatalf("Open(%s) succeeded, want failure", o.URL)
	}
	t.Logf("Open: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "redis")
	other := certtest.NewCA(t, "other")
	srv := ca.Server("redis", "127.0.0.1")
	s := redistest.NewTLS(t, redistest.TLSFiles{CertFile: srv.CertFile, KeyFile: srv.KeyFile})
	url := "rediss://" + s.Addr + "/0"

	c, topo := open(t, redisconn.Options{URL: url, TLSFiles: tlsfile.Files{CAFile: ca.CAFile}})
	if topo != redisconn.Single {
		t.Errorf("topology %s, want single", topo)
	}
	if err := c.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	openFails(t, redisconn.Options{URL: url}, "redis single "+s.Addr, "not signed by a trusted CA", "--redis-tls-ca-file")
	openFails(t, redisconn.Options{URL: url, TLSFiles: tlsfile.Files{CAFile: other.CAFile}}, "not signed by a trusted CA")
	openFails(t, redisconn.Options{URL: "redis://" + s.Addr}, "redis single "+s.Addr, "a TLS port needs a rediss URL")
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "redis")
	srv := ca.Server("redis", "127.0.0.1")
	client := ca.Client("leadconv")
	s := redistest.NewTLS(t, redistest.TLSFiles{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CAFile})
	url := "rediss://" + s.Addr
	openFails(t, redisconn.Options{URL: url, TLSFiles: tlsfile.Files{CAFile: ca.CAFile}}, "redis single "+s.Addr)
	open(t, redisconn.Options{URL: url, TLSFiles: tlsfile.Files{CAFile: ca.CAFile, CertFile: client.CertFile, KeyFile: client.KeyFile}})
}

func TestCluster(t *testing.T) {
	t.Parallel()
	cs := redistest.NewCluster(t, 3)
	c, topo := open(t, redisconn.Options{URL: cs.URL()})
	if topo != redisconn.Cluster {
		t.Fatalf("topology %s, want cluster", topo)
	}
	ctx := context.Background()
	// Keys of many slots: every master gets some, and the client routes.
	for i := range 50 {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("set: %v", err)
		}
	}
	for _, n := range cs.Nodes {
		if k, err := n.Client().DBSize(ctx).Result(); err != nil || k == 0 {
			t.Errorf("a master holds %d keys (%v): the client does not spread them", k, err)
		}
	}
	// One address is enough to find the others.
	open(t, redisconn.Options{URL: "redis+cluster://" + cs.Addrs[1]})
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	ss := redistest.NewSentinel(t)
	c, topo := open(t, redisconn.Options{URL: "redis+sentinel://" + ss.SentinelAddr + "/" + ss.MasterName + "/2"})
	if topo != redisconn.Sentinel {
		t.Fatalf("topology %s, want sentinel", topo)
	}
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m := redis.NewClient(&redis.Options{Network: "unix", Addr: ss.Master.Options().Addr, DB: 2})
	defer m.Close()
	if v, err := m.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("master db 2 has k = %q, %v", v, err)
	}
	openFails(t, redisconn.Options{URL: "redis+sentinel://" + ss.SentinelAddr + "/nosuchmaster"}, "redis sentinel "+ss.SentinelAddr)
}

func TestACLUserAndPasswordFile(t *testing.T) {
	t.Parallel()
	s := redistest.New(t)
	ctx := context.Background()
	if err := s.Client().Do(ctx, "ACL", "SETUSER", "lc", "on", ">pw-from-file", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(s.URL(), "unix://", "unix://lc:wrong-pw@", 1)
	c, _ := open(t, redisconn.Options{URL: url, PasswordFile: pw})
	if who, err := c.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "lc" {
		t.Fatalf("whoami = %q, %v", who, err)
	}
	openFails(t, redisconn.Options{URL: url}, "WRONGPASS")
}

func TestURLErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    redisconn.Options
		want string
	}{
		{redisconn.Options{URL: "localhost:6379"}, "no scheme: allowed forms are redis://"},
		{redisconn.Options{URL: "memcache://h:1"}, `scheme "memcache"`},
		{redisconn.Options{URL: "redis+ring://h:1"}, `scheme "redis+ring"`},
		{redisconn.Options{URL: "unix+cluster:///x"}, `scheme "unix+cluster"`},
		{redisconn.Options{URL: "redis://h:1,h:2"}, "several hosts need redis+cluster://"},
		{redisconn.Options{URL: "redis+cluster://h:1/3"}, "a cluster has no database"},
		{redisconn.Options{URL: "redis+sentinel://h:1"}, "a sentinel URL names the master"},
		{redisconn.Options{URL: "redis://u:secret@h:bad"}, "--redis-url"},
		{redisconn.Options{URL: "redis://h:1", TLSFiles: tlsfile.Files{CAFile: "ca.pem"}}, "need a rediss:// URL"},
		{redisconn.Options{URL: "rediss://h:1", TLSFiles: tlsfile.Files{CAFile: "/nonexistent/ca.pem"}}, "--redis-tls-ca-file: open /nonexistent/ca.pem"},
		{redisconn.Options{URL: "redis://h:1", PasswordFile: "/nonexistent/pw"}, "--redis-password-file: open /nonexistent/pw"},
		{redisconn.Options{URL: "redis+cluster://h:1?bogus=1"}, "unexpected option: bogus"},
	} {
		err := tc.o.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q shows the password", tc.o.URL, err)
		}
	}
	for _, ok := range []string{"redis://localhost:6379/0", "rediss://u:p@h:6380", "unix:///tmp/r.sock", "redis+cluster://u:p@h:1,h:2,h:3?dial_timeout=3s",
		"rediss+cluster://h:1", "redis+sentinel://h:26379,h:26380/mymaster/1?sentinel_password=x", "rediss+sentinel://h:1/m"} {
		if err := (&redisconn.Options{URL: ok}).Check(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
