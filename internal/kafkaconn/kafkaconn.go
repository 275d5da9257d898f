// Package kafkaconn holds the Kafka connection security every leadconv
// command that talks to Kafka shares: SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) and TLS, their flags, and a start-up check that fails fast
// with the broker and the cause instead of the client's endless retries.
package kafkaconn

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/leadconv/leadconv/internal/tlsfile"
)

// Mechanisms are the accepted --sasl-mechanism values.
var Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// Options are the security settings of a Kafka connection. The zero value
// is a plaintext connection without authentication.
type Options struct {
	TLS          bool // TLS without any file: the system's roots
	TLSFiles     tlsfile.Files
	Mechanism    string // one of Mechanisms, case-insensitive; empty: no SASL
	Username     string
	Password     string
	PasswordFile string // read at start-up; wins over Password
}

// FlagNames lists the flags Register defines, for environment overrides
// (LEADCONV_SASL_PASSWORD and so on).
var FlagNames = []string{"kafka-tls", "kafka-tls-ca-file", "kafka-tls-cert-file", "kafka-tls-key-file",
	"kafka-tls-server-name", "sasl-mechanism", "sasl-username", "sasl-password", "sasl-password-file"}

// Register defines the flags on fs.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.BoolVar(&o.TLS, "kafka-tls", false, "connect to Kafka over TLS (implied by any --kafka-tls-* file or name)")
	fs.StringVar(&o.TLSFiles.CAFile, "kafka-tls-ca-file", "", "PEM CA bundle the brokers' certificates must chain to; empty: the system's roots")
	fs.StringVar(&o.TLSFiles.CertFile, "kafka-tls-cert-file", "", "PEM client certificate for mutual TLS (with --kafka-tls-key-file)")
	fs.StringVar(&o.TLSFiles.KeyFile, "kafka-tls-key-file", "", "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&o.TLSFiles.ServerName, "kafka-tls-server-name", "", "name the brokers' certificates must carry; empty: each broker's host")
	fs.StringVar(&o.Mechanism, "sasl-mechanism", "", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL")
	fs.StringVar(&o.Username, "sasl-username", "", "Kafka SASL user name")
	fs.StringVar(&o.Password, "sasl-password", "", "Kafka SASL password (prefer --sasl-password-file or the variable: a command line is visible to other users)")
	fs.StringVar(&o.PasswordFile, "sasl-password-file", "", "file holding the Kafka SASL password (a trailing newline is ignored)")
}

// ClientOpts returns the franz-go options of o. Errors name the flag and
// the allowed values; they never contain the password.
func (o *Options) ClientOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if o.TLS || o.TLSFiles.Set() {
		c, err := o.TLSFiles.Config("--kafka-tls")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(c))
	}
	mech, err := o.mechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

func (o *Options) mechanism() (sasl.Mechanism, error) {
	if o.Mechanism == "" {
		if o.Username != "" || o.Password != "" || o.PasswordFile != "" {
			return nil, errors.New("--sasl-username and --sasl-password need --sasl-mechanism: allowed values are " + strings.Join(Mechanisms, ", "))
		}
		return nil, nil
	}
	pass := o.Password
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--sasl-password-file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if o.Username == "" || pass == "" {
		return nil, fmt.Errorf("--sasl-mechanism %s: needs --sasl-username and a password (--sasl-password-file or --sasl-password)", o.Mechanism)
	}
	switch strings.ToUpper(o.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: o.Username, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: o.Username, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: o.Username, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("--sasl-mechanism %q: allowed values are %s", o.Mechanism, strings.Join(Mechanisms, ", "))
}

// CheckTimeout bounds each broker's answer in Check.
const CheckTimeout = 10 * time.Second

// Check connects to each seed broker in turn with opts until one answers a
// metadata request. Without it a misconfigured client would retry forever;
// with it start-up stops with the broker and the cause: an untrusted
// certificate, a refused handshake, failed authentication or no answer.
func (o *Options) Check(ctx context.Context, brokers []string, opts []kgo.Opt) error {
	var errs []error
	for _, b := range brokers {
		err := probe(ctx, b, opts)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("kafka broker %s: %w", b, o.explain(err)))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// Fatal reports whether an error of Check is one no retry mends: failed
// authentication, a mechanism the broker refuses, or a TLS failure. Any
// other (a refused connection, no answer) is a broker not up yet, which
// start-up waits for.
func Fatal(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) || tlsfile.Fatal(err)
}

func probe(ctx context.Context, broker string, opts []kgo.Opt) error {
	var h saslHook
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(broker), kgo.RequestRetries(0), kgo.WithHooks(&h))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	err = cl.Ping(ctx)
	if err != nil && h.failed.Load() && !errors.Is(err, kerr.SaslAuthenticationFailed) {
		// Some brokers close the connection instead of answering
		// SASL_AUTHENTICATION_FAILED.
		err = fmt.Errorf("%w: the broker closed the connection: %w", kerr.SaslAuthenticationFailed, err)
	}
	return err
}

// saslHook notes a failed read of a SASL handshake or authenticate
// response.
type saslHook struct{ failed atomic.Bool }

func (h *saslHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil && (key == int16(kmsg.SASLHandshake) || key == int16(kmsg.SASLAuthenticate)) {
		h.failed.Store(true)
	}
}

func (o *Options) explain(err error) error {
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("SASL %s authentication of user %q failed (check the user name and password): %w", strings.ToUpper(o.Mechanism), o.Username, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("the broker does not accept SASL %s (--sasl-mechanism): %w", strings.ToUpper(o.Mechanism), err)
	case errors.Is(err, context.DeadlineExceeded):
		hint := ""
		if !o.TLS && !o.TLSFiles.Set() {
			hint = " (a TLS listener gives no answer to plaintext: --kafka-tls?)"
		}
		return fmt.Errorf("no answer within %s%s: %w", CheckTimeout, hint, err)
	}
	return tlsfile.Explain(err, "--kafka-tls")
}
