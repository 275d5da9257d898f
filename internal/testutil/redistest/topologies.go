package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TLSFiles are the PEM files of a TLS server.
type TLSFiles struct {
	CertFile, KeyFile string
	// CAFile verifies client certificates; empty: clients need none.
	CAFile string
}

// TLSServer is a redis-server with a TLS port on loopback (its plaintext
// port is off).
type TLSServer struct {
	*Server
	Addr string // 127.0.0.1:port of the TLS port
}

// NewTLS starts a redis-server that accepts TLS only, on a free loopback
// port (the harness reaches it over its unix socket to see it is up).
func NewTLS(t testing.TB, f TLSFiles, extra ...string) *TLSServer {
	t.Helper()
	needBinary(t, "redis-server", "redis-server")
	port := freePorts(t, 1, 0)[0]
	args := []string{"--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", f.CertFile, "--tls-key-file", f.KeyFile}
	if f.CAFile != "" {
		args = append(args, "--tls-ca-cert-file", f.CAFile, "--tls-auth-clients", "yes")
	} else {
		args = append(args, "--tls-auth-clients", "no")
	}
	s := &Server{t: t, dir: t.TempDir(), extra: append(args, extra...)}
	s.socket = filepath.Join(s.dir, "redis.sock")
	s.start()
	t.Cleanup(s.stop)
	return &TLSServer{Server: s, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}

// ClusterServers is a Redis Cluster of masters without replicas on
// loopback ports, each node a private redis-server.
type ClusterServers struct {
	t     testing.TB
	Nodes []*Server
	Addrs []string // host:port of each master
}

// NewCluster starts masters redis-servers with cluster mode on and joins
// them with redis-cli --cluster create: the slots are spread evenly.
func NewCluster(t testing.TB, masters int) *ClusterServers {
	t.Helper()
	needBinary(t, "redis-server", "redis-server")
	needBinary(t, "redis-cli", "redis-tools")
	// A node also listens on its port + 10000 (the cluster bus).
	ports := freePorts(t, masters, 10000)
	c := &ClusterServers{t: t}
	for _, p := range ports {
		s := &Server{t: t, dir: t.TempDir()}
		s.socket = filepath.Join(s.dir, "redis.sock")
		s.extra = []string{"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"), "--cluster-node-timeout", "5000"}
		s.start()
		t.Cleanup(s.stop)
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	args := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node must agree the cluster is up before clients route by it.
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		cl := n.Client()
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster not ready: %v\n%s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// URL is the redis+cluster:// URL of the cluster.
func (c *ClusterServers) URL() string { return "redis+cluster://" + strings.Join(c.Addrs, ",") }

// Client returns a cluster client closed at the end of the test.
func (c *ClusterServers) Client() *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// NodeOf returns the node that serves key's slot.
func (c *ClusterServers) NodeOf(ctx context.Context, key string) *Server {
	c.t.Helper()
	slot, err := c.Nodes[0].Client().ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatalf("redistest: cluster keyslot: %v", err)
	}
	for _, n := range c.Nodes {
		slots, err := n.Client().ClusterShards(ctx).Result()
		if err != nil {
			c.t.Fatalf("redistest: cluster shards: %v", err)
		}
		id, err := n.Client().Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			c.t.Fatalf("redistest: cluster myid: %v", err)
		}
		for _, sh := range slots {
			for _, node := range sh.Nodes {
				if node.ID != id || node.Role != "master" {
					continue
				}
				for _, r := range sh.Slots {
					if int64(r.Start) <= slot && slot <= int64(r.End) {
						return n
					}
				}
			}
		}
	}
	c.t.Fatalf("redistest: no node serves slot %d", slot)
	return nil
}

// SentinelServers is a master and one sentinel watching it.
type SentinelServers struct {
	Master       *Server
	MasterName   string
	SentinelAddr string
}

// NewSentinel starts a master on a loopback port and a sentinel (redis-server
// --sentinel) monitoring it under the name "leadconv".
func NewSentinel(t testing.TB) *SentinelServers {
	t.Helper()
	needBinary(t, "redis-server", "redis-server")
	ports := freePorts(t, 2, 0)
	m := &Server{t: t, dir: t.TempDir()}
	m.socket = filepath.Join(m.dir, "redis.sock")
	m.extra = []string{"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1"}
	m.start()
	t.Cleanup(m.stop)

	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor leadconv 127.0.0.1 %d 1\n", ports[1], dir, ports[0])
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel", "--logfile", filepath.Join(dir, "sentinel.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := sc.GetMasterAddrByName(context.Background(), "leadconv").Result()
		if err == nil && len(a) == 2 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Fatalf("redis sentinel not ready: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &SentinelServers{Master: m, MasterName: "leadconv", SentinelAddr: addr}
}

// needBinary fails the test with the install command when name is missing.
func needBinary(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install it with `apt-get install -y %s` (or run `make test`, which does)", name, pkg)
	}
}

// freePorts finds n loopback ports that are free, each with port+offset free
// too when offset is not 0. Another process may take one before the server
// binds it; on loopback in a test run that is rare enough.
func freePorts(t testing.TB, n, offset int) []int {
	t.Helper()
	var out []int
	var hold []net.Listener
	defer func() {
		for _, l := range hold {
			_ = l.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 200; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		if offset != 0 {
			if p+offset > 65535 {
				_ = l.Close()
				continue
			}
			l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+offset)))
			if err != nil {
				_ = l.Close()
				continue
			}
			hold = append(hold, l2)
		}
		hold = append(hold, l)
		out = append(out, p)
	}
	if len(out) < n {
		t.Fatalf("redistest: found %d of %d free ports", len(out), n)
	}
	return out
}
