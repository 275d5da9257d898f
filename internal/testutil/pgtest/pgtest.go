// Package pgtest gives each test a fresh database on a real PostgreSQL.
//
// When LEADCONV_TEST_POSTGRES_URL is set, databases are created on that
// server. Otherwise one private server per test binary is started from
// Debian's postgresql package (initdb + postgres from
// /usr/lib/postgresql/*/bin) in a temporary directory, listening on
// 127.0.0.1 on a free port with its unix socket in the same directory. When
// the binaries are missing the test fails with the install command, so CI can
// never skip silently.
//
// Packages using New should stop the private server when their tests end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without it the server still dies with the test binary (parent-death
// signal), but its temporary directory is left behind.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

// EnvURL names the variable holding an existing server's URL (a database
// the user may CREATE DATABASE from, e.g. postgres://postgres@127.0.0.1/postgres).
const EnvURL = "LEADCONV_TEST_POSTGRES_URL"

const installHint = "install it with `sudo apt-get install -y postgresql` (or run `make test`, which does)"

// DB is one fresh database, dropped at the end of the test.
type DB struct {
	// URL reaches the database (postgres://...).
	URL string
	// Name is the database name.
	Name string
	t    testing.TB
}

var (
	once   sync.Once
	shared *server
	errSrv error
	seq    atomic.Int64
)

// New creates a fresh database for t and drops it when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	once.Do(func() { shared, errSrv = start() })
	if errSrv != nil {
		t.Fatalf("pgtest: %v", errSrv)
	}
	name := fmt.Sprintf("lc_test_%d_%d", os.Getpid(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := shared.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := shared.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return &DB{URL: shared.urlFor(name), Name: name, t: t}
}

// Pool returns a connection pool to the database, closed at the end of the
// test.
func (d *DB) Pool() *pgxpool.Pool {
	d.t.Helper()
	p, err := pgxpool.New(context.Background(), d.URL)
	if err != nil {
		d.t.Fatalf("pgtest: pool: %v", err)
	}
	d.t.Cleanup(p.Close)
	return p
}

// Main runs the tests, stops the private server, if one was started, and
// then fails the run if the tests leaked goroutines.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// server is either the external server of EnvURL or a private one.
type server struct {
	base         *url.URL // URL of the admin database; Path is replaced per test
	dir          string   // private server only
	stopPostgres func()
}

func (s *server) urlFor(db string) string {
	u := *s.base
	u.Path = "/" + db
	return u.String()
}

func (s *server) exec(ctx context.Context, sql string) error {
	c, err := pgx.Connect(ctx, s.base.String())
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.Background()) }()
	_, err = c.Exec(ctx, sql)
	return err
}

func (s *server) stop() {
	if s.stopPostgres != nil {
		s.stopPostgres()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func start() (*server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return nil, fmt.Errorf("%s must be a postgres:// URL", EnvURL)
		}
		return &server{base: u}, nil
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	var lastErr error
	// A free port can be taken between probing and binding: try a few.
	for range 3 {
		s, err := startPrivate(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// binDir returns the newest /usr/lib/postgresql/<version>/bin holding initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", fmt.Errorf("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: %s, or set %s", installHint, EnvURL)
	}
	sort.Slice(ok, func(i, j int) bool { return version(ok[i]) > version(ok[j]) })
	return ok[0], nil
}

func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

func startPrivate(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "leadconv-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir}
	fail := func(err error) (*server, error) {
		s.stop()
		return nil, err
	}
	// initdb and postgres refuse to run as root: run them as the postgres
	// user the Debian package creates.
	cred, err := credential()
	if err != nil {
		return fail(err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown %s: %w", dir, err))
		}
	}
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "postgres.log")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = logf.Close() }()
	if cred != nil {
		_ = os.Chown(logPath, int(cred.Uid), int(cred.Gid))
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		// Durability is worthless for throw-away test data.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
	}
	stop, exited, err := spawn(filepath.Join(bin, "postgres"), args, cred, logf)
	if err != nil {
		return fail(err)
	}
	s.stopPostgres = stop
	s.base = &url.URL{Scheme: "postgres", User: url.User("postgres"),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres",
		RawQuery: "sslmode=disable"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.exec(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fail(fmt.Errorf("postgres exited during start-up:\n%s", log))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			return fail(fmt.Errorf("postgres did not become ready: %w\n%s", err, log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spawn starts postgres from a goroutine locked to its OS thread for the
// server's lifetime: the parent-death signal fires when the spawning thread
// ends, so the thread must outlive the server. It returns a stop function and
// a channel closed when the process exits.
func spawn(path string, args []string, cred *syscall.Credential, logf *os.File) (func(), <-chan struct{}, error) {
	started := make(chan error, 1)
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with the goroutine, after the
		// server is gone.
		cmd := exec.Command(path, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited); close(waited) }()
		select {
		case <-quit:
			// SIGQUIT: immediate shutdown, the data is thrown away anyway.
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-waited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-waited
			}
		case <-waited:
		}
	}()
	if err := <-started; err != nil {
		return nil, nil, fmt.Errorf("start postgres: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-exited
		})
	}, exited, nil
}

// credential returns the postgres user's credential when running as root,
// nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user to run the server (%s): %w", installHint, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user ids: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
