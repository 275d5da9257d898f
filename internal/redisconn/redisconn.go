// Package redisconn opens the Redis client of leadconv from a URL that names
// the topology: one server, a Redis Cluster or a master behind Sentinel,
// with TLS from PEM files and ACL users. Every topology gives a
// redis.UniversalClient; the matcher's keys carry the {tenant} hash tag, so
// its scripts run unchanged on a cluster.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/tlsfile"
)

// URLForms is the help text of the accepted URLs.
const URLForms = "redis://[user:password@]host:port[/db], rediss:// for TLS, unix:///path.sock, " +
	"redis+cluster://[user:password@]host:port[,host:port...] (Redis Cluster; rediss+cluster:// for TLS), " +
	"redis+sentinel://[user:password@]host:port[,host:port...]/master[/db] (Sentinel; rediss+sentinel:// for TLS)"

// Options are the connection settings.
type Options struct {
	URL          string
	PasswordFile string // wins over the URL's password
	TLSFiles     tlsfile.Files
}

// FlagNames lists the flags Register defines besides --redis-url, for
// environment overrides.
var FlagNames = []string{"redis-password-file", "redis-tls-ca-file", "redis-tls-cert-file", "redis-tls-key-file"}

// Register defines the TLS and password-file flags on fs (the URL flag is
// the caller's: its default differs per command).
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.PasswordFile, "redis-password-file", "", "file holding the Redis password (of the URL's ACL user); wins over a password in --redis-url")
	fs.StringVar(&o.TLSFiles.CAFile, "redis-tls-ca-file", "", "PEM CA bundle the Redis servers' certificates must chain to (rediss URLs); empty: the system's roots")
	fs.StringVar(&o.TLSFiles.CertFile, "redis-tls-cert-file", "", "PEM client certificate for Redis mutual TLS (with --redis-tls-key-file)")
	fs.StringVar(&o.TLSFiles.KeyFile, "redis-tls-key-file", "", "PEM private key of --redis-tls-cert-file")
}

// Topology names what a URL points at.
type Topology string

// The topologies.
const (
	Single   Topology = "single"
	Cluster  Topology = "cluster"
	Sentinel Topology = "sentinel"
)

// parsed is a URL's topology and the options of its constructor.
type parsed struct {
	topology Topology
	tls      bool
	single   *redis.Options
	cluster  *redis.ClusterOptions
	sentinel *redis.FailoverOptions
	addrs    []string
}

// Check validates o without connecting: the URL and the files. Errors name
// the flag and never contain a password.
func (o *Options) Check() error {
	_, err := o.parse()
	return err
}

// Open connects and pings. The error of a failed ping names the servers and
// the cause (an untrusted certificate, wrong credentials).
func (o *Options) Open(ctx context.Context) (redis.UniversalClient, Topology, error) {
	c, err := o.Client()
	if err != nil {
		return nil, "", err
	}
	if err := o.Ping(ctx, c); err != nil {
		_ = c.Close()
		return nil, "", err
	}
	p, _ := o.parse()
	return c, p.topology, nil
}

// Client returns the client of o without connecting.
func (o *Options) Client() (redis.UniversalClient, error) {
	p, err := o.parse()
	if err != nil {
		return nil, err
	}
	var c redis.UniversalClient
	switch p.topology {
	case Cluster:
		c = redis.NewClusterClient(p.cluster)
	case Sentinel:
		c = redis.NewFailoverClient(p.sentinel)
	default:
		c = redis.NewClient(p.single)
	}
	return c, nil
}

// Addrs names the servers of o for the logs.
func (o *Options) Addrs() string {
	p, err := o.parse()
	if err != nil {
		return ""
	}
	return strings.Join(p.addrs, ",")
}

// Ping checks that c, a client of o, answers; a failure names the servers
// and the cause.
func (o *Options) Ping(ctx context.Context, c redis.UniversalClient) error {
	err := c.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	p, perr := o.parse()
	if perr != nil {
		return perr
	}
	if errors.Is(err, io.EOF) && !p.tls {
		err = fmt.Errorf("the server closed the connection (a TLS port needs a rediss URL): %w", err)
	}
	return fmt.Errorf("redis %s %s: %w", p.topology, strings.Join(p.addrs, ","), tlsfile.Explain(err, "--redis-tls"))
}

// Fatal reports whether err is one no retry mends: an untrusted or
// mismatched certificate, or refused credentials. Start-up stops on it
// instead of waiting.
func Fatal(err error) bool {
	if tlsfile.Fatal(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "NOAUTH") || strings.Contains(msg, "NOPERM")
}

func (o *Options) parse() (*parsed, error) {
	scheme, rest, ok := strings.Cut(o.URL, "://")
	if !ok {
		return nil, fmt.Errorf("--redis-url: no scheme: allowed forms are %s", URLForms)
	}
	base, topo, _ := strings.Cut(scheme, "+")
	p := &parsed{}
	switch topo {
	case "":
		p.topology = Single
	case "cluster":
		p.topology = Cluster
	case "sentinel":
		p.topology = Sentinel
	default:
		return nil, fmt.Errorf("--redis-url: scheme %q: allowed forms are %s", scheme, URLForms)
	}
	if base != "redis" && base != "rediss" && (base != "unix" || topo != "") {
		return nil, fmt.Errorf("--redis-url: scheme %q: allowed forms are %s", scheme, URLForms)
	}
	useTLS := base == "rediss"
	p.tls = useTLS
	if o.TLSFiles.Set() && !useTLS {
		return nil, fmt.Errorf("--redis-tls-* files need a rediss:// URL (rediss+cluster://, rediss+sentinel://), not %s://", scheme)
	}
	password, err := o.password()
	if err != nil {
		return nil, err
	}
	// Several hosts, comma separated, become the addr parameters go-redis
	// takes: the first is the URL's host.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	hostList := strings.Split(hosts, ",")
	p.addrs = hostList
	u, err := url.Parse(base + "://" + userinfo + hostList[0] + tail)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", urlErr(err))
	}
	q := u.Query()
	for _, h := range hostList[1:] {
		q.Add("addr", h)
	}
	var user, pass string
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if password != "" {
		pass = password
	}
	var tlsConf *tls.Config
	if useTLS {
		if tlsConf, err = o.TLSFiles.Config("--redis-tls"); err != nil {
			return nil, err
		}
	}
	switch p.topology {
	case Single:
		if len(hostList) > 1 {
			return nil, fmt.Errorf("--redis-url: several hosts need redis+cluster:// or redis+sentinel://")
		}
		p.single, err = redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		p.single.Password = pass
		p.addrs = []string{p.single.Addr}
		if tlsConf != nil {
			tlsConf.ServerName = p.single.TLSConfig.ServerName
			p.single.TLSConfig = tlsConf
		}
	case Cluster:
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("--redis-url: a cluster has no database: remove the path %q", u.Path)
		}
		u.Path, u.RawQuery = "", q.Encode()
		p.cluster, err = redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		p.cluster.Password = pass
		if tlsConf != nil {
			// Each node is verified under the address it is dialled at:
			// the cluster announces them.
			p.cluster.TLSConfig = tlsConf
		}
	case Sentinel:
		// Path: /master[/db]. The URL's user and password are the data
		// nodes'; the sentinels' come from sentinel_username and
		// sentinel_password.
		parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
		if len(parts) == 0 || len(parts) > 2 {
			return nil, fmt.Errorf("--redis-url: a sentinel URL names the master: redis+sentinel://host:port[,host:port...]/master[/db]")
		}
		q.Set("master_name", parts[0])
		sentUser, sentPass := q.Get("sentinel_username"), q.Get("sentinel_password")
		q.Del("sentinel_username")
		q.Del("sentinel_password")
		u.Path = "/" + strings.Join(parts[1:], "")
		u.RawQuery, u.User = q.Encode(), nil
		p.sentinel, err = redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		p.sentinel.Username, p.sentinel.Password = user, pass
		p.sentinel.SentinelUsername, p.sentinel.SentinelPassword = sentUser, sentPass
		if tlsConf != nil {
			p.sentinel.TLSConfig = tlsConf
		}
	}
	return p, nil
}

func (o *Options) password() (string, error) {
	if o.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("--redis-password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// urlErr drops the URL from url.Parse's message: it may hold a password.
func urlErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
