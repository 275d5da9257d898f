// Package redistest runs a private redis-server for tests.
//
// Tests prove correctness against the real server, never a mock: New starts
// redis-server on a unix socket inside t.TempDir() (or uses REDIS_ADDR when
// set) and stops it when the test ends. NewTLS, NewCluster and NewSentinel
// start a TLS-only server, a Redis Cluster of masters and a master behind a
// sentinel on free loopback ports. When a binary is missing the test fails
// with the install command, so CI can never skip silently.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one private redis-server process.
type Server struct {
	t      testing.TB
	dir    string
	socket string
	cmd    *exec.Cmd
	extra  []string
	// External is true when the server comes from REDIS_ADDR and cannot be
	// restarted by the test.
	External bool
	addr     string
}

var seq atomic.Int64

// New starts a server for t, or attaches to REDIS_ADDR when it is set. Extra
// arguments are passed to redis-server (for example "--appendonly", "yes").
func New(t testing.TB, extra ...string) *Server {
	t.Helper()
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return &Server{t: t, External: true, addr: addr}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found: install it with `apt-get install -y redis-server` (or run `make test`, which does)")
	}
	s := &Server{t: t, dir: t.TempDir(), extra: extra}
	s.socket = filepath.Join(s.dir, "redis.sock")
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	args := append([]string{
		"--port", "0",
		"--unixsocket", s.socket,
		"--unixsocketperm", "700",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.extra...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.socket})
		err := c.Ping(context.Background()).Err()
		_ = c.Close()
		if err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	s.t.Fatalf("redis-server did not become ready:\n%s", log)
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the server and starts it again on the same socket. Data that
// was not persisted (the default: no AOF, no RDB) is gone afterwards.
func (s *Server) Restart() {
	s.t.Helper()
	if s.External {
		s.t.Fatalf("redistest: cannot restart the external server at REDIS_ADDR")
	}
	s.stop()
	s.start()
}

// RestartEmpty kills the server, deletes its data (the AOF and RDB files)
// and starts it again: a Redis that came back empty.
func (s *Server) RestartEmpty() {
	s.t.Helper()
	if s.External {
		s.t.Fatalf("redistest: cannot restart the external server at REDIS_ADDR")
	}
	s.stop()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "redis.log" && n != "redis.sock" {
			if err := os.RemoveAll(filepath.Join(s.dir, n)); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	s.start()
}

// Kill stops the server without starting it again.
func (s *Server) Kill() { s.stop() }

// Options returns client options that reach the server.
func (s *Server) Options() *redis.Options {
	if s.External {
		return &redis.Options{Addr: s.addr}
	}
	return &redis.Options{Network: "unix", Addr: s.socket}
}

// URL returns a redis:// or unix:// URL for the server.
func (s *Server) URL() string {
	if s.External {
		return "redis://" + s.addr
	}
	return "unix://" + s.socket
}

// Client returns a new client closed at the end of the test.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(s.Options())
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Namespace returns a key prefix unique within this test process, so tests
// sharing an external server do not see each other's keys.
func Namespace(t testing.TB) string {
	return fmt.Sprintf("t%d_%d", os.Getpid(), seq.Add(1))
}

// UsedMemory reads used_memory from INFO memory.
func UsedMemory(ctx context.Context, c redis.UniversalClient) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redistest: info memory: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "used_memory:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("redistest: used_memory missing from INFO")
}
