package kafkaconn_test

import (
	"context"
	"crypto/tls"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadconv/leadconv/internal/kafkaconn"
	"github.com/leadconv/leadconv/internal/testutil/certtest"
	"github.com/leadconv/leadconv/internal/tlsfile"
)

func cluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "t")}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// roundTrip produces a record and reads it back through a client with o's
// options: the connection really works, not only the probe.
func roundTrip(t *testing.T, broker string, o *kafkaconn.Options) {
	t.Helper()
	opts, err := o.ClientOpts()
	if err != nil {
		t.Fatalf("ClientOpts: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := o.Check(ctx, []string{broker}, opts); err != nil {
		t.Fatalf("Check: %v", err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(broker), kgo.ConsumeTopics("t"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if n := len(fs.Records()); n != 1 {
		t.Fatalf("read %d records, want 1", n)
	}
}

// checkFails asserts that Check fails fast with a message naming the broker
// and each of want.
func checkFails(t *testing.T, broker string, o *kafkaconn.Options, want ...string) {
	t.Helper()
	opts, err := o.ClientOpts()
	if err != nil {
		t.Fatalf("ClientOpts: %v", err)
	}
	start := time.Now()
	err = o.Check(context.Background(), []string{broker}, opts)
	if err == nil {
		t.Fatalf("Check succeeded, want failure")
	}
	if d := time.Since(start); d >= kafkaconn.CheckTimeout {
		t.Errorf("Check took %s: not fast, the client retried", d)
	}
	t.Logf("Check: %v", err)
	for _, w := range append([]string{"kafka broker " + broker}, want...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if o.Password != "" && strings.Contains(err.Error(), o.Password) {
		t.Errorf("error %q contains the password", err)
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range kafkaconn.Mechanisms {
		t.Run(mech, func(t *testing.T) {
			broker := cluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "leadconv", "s3cret-pw"))
			roundTrip(t, broker, &kafkaconn.Options{Mechanism: strings.ToLower(mech), Username: "leadconv", Password: "s3cret-pw"})
			checkFails(t, broker, &kafkaconn.Options{Mechanism: mech, Username: "leadconv", Password: "wrong-pw"},
				"SASL "+mech+" authentication of user \"leadconv\" failed")
		})
	}
}

func TestSASLPasswordFile(t *testing.T) {
	broker := cluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "leadconv", "from-file"))
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, broker, &kafkaconn.Options{Mechanism: "SCRAM-SHA-512", Username: "leadconv", Password: "ignored", PasswordFile: f})
}

// A user with ACLs (not a superuser) connects; the ACLs are the broker's
// business, the connection is ours.
func TestSASLUserWithACLs(t *testing.T) {
	acl := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	broker := cluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.User("SCRAM-SHA-256", "leadconv", "pw",
			acl(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationWrite),
			acl(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationRead),
			acl(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationDescribe)))
	roundTrip(t, broker, &kafkaconn.Options{Mechanism: "SCRAM-SHA-256", Username: "leadconv", Password: "pw"})
}

func TestTLS(t *testing.T) {
	ca := certtest.NewCA(t, "test")
	other := certtest.NewCA(t, "other")
	srv := ca.Server("broker", "127.0.0.1", "localhost")
	broker := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}))

	roundTrip(t, broker, &kafkaconn.Options{TLSFiles: tlsfile.Files{CAFile: ca.CAFile}})
	t.Run("missing CA", func(t *testing.T) {
		checkFails(t, broker, &kafkaconn.Options{TLS: true}, "not signed by a trusted CA", "--kafka-tls-ca-file")
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		checkFails(t, broker, &kafkaconn.Options{TLSFiles: tlsfile.Files{CAFile: other.CAFile}}, "not signed by a trusted CA")
	})
	t.Run("wrong server name", func(t *testing.T) {
		checkFails(t, broker, &kafkaconn.Options{TLSFiles: tlsfile.Files{CAFile: ca.CAFile, ServerName: "kafka.example"}},
			"not valid for the name", "--kafka-tls-server-name")
	})
	t.Run("plaintext to a TLS listener", func(t *testing.T) {
		checkFails(t, broker, &kafkaconn.Options{}, "is TLS missing")
	})
}

func TestTLSServerNameAndClientCert(t *testing.T) {
	ca := certtest.NewCA(t, "test")
	srv := ca.Server("broker", "kafka.internal")
	client := ca.Client("leadconv")
	broker := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}))

	files := tlsfile.Files{CAFile: ca.CAFile, ServerName: "kafka.internal"}
	checkFails(t, broker, &kafkaconn.Options{TLSFiles: files}, "refused the handshake", "--kafka-tls-cert-file")
	files.CertFile, files.KeyFile = client.CertFile, client.KeyFile
	roundTrip(t, broker, &kafkaconn.Options{TLSFiles: files})
}

func TestSASLOverTLS(t *testing.T) {
	ca := certtest.NewCA(t, "test")
	srv := ca.Server("broker", "127.0.0.1")
	broker := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "leadconv", "pw"))
	roundTrip(t, broker, &kafkaconn.Options{TLSFiles: tlsfile.Files{CAFile: ca.CAFile}, Mechanism: "SCRAM-SHA-512", Username: "leadconv", Password: "pw"})
	checkFails(t, broker, &kafkaconn.Options{TLSFiles: tlsfile.Files{CAFile: ca.CAFile}, Mechanism: "SCRAM-SHA-512", Username: "leadconv", Password: "nope"},
		"authentication of user \"leadconv\" failed")
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sasl-mechanism", "GSSAPI", "--sasl-username", "u", "--sasl-password", "p"}, `--sasl-mechanism "GSSAPI": allowed values are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u"}, "needs --sasl-username and a password"},
		{[]string{"--sasl-username", "u", "--sasl-password", "p"}, "need --sasl-mechanism"},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-file", "/nonexistent/pw"}, "--sasl-password-file: open /nonexistent/pw"},
		{[]string{"--kafka-tls-ca-file", "/nonexistent/ca.pem"}, "--kafka-tls-ca-file: open /nonexistent/ca.pem"},
		{[]string{"--kafka-tls-cert-file", "c.pem"}, "--kafka-tls-cert-file and --kafka-tls-key-file: give both or neither"},
	} {
		var o kafkaconn.Options
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		o.Register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := o.ClientOpts()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	var o kafkaconn.Options
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o.Register(fs)
	for _, n := range kafkaconn.FlagNames {
		if fs.Lookup(n) == nil {
			t.Errorf("FlagNames lists %s, which Register does not define", n)
		}
	}
}
