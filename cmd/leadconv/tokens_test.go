package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/requests"
)

const (
	testTokenEnv    = "LEADCONV_TEST_JWT_SECRET"
	testTokenSecret = "a-test-secret-of-32-bytes-or-more"
)

// tokenConfig writes a config whose tenants verify request tokens with the
// HMAC secret in testTokenEnv.
func tokenConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "leadconv.yaml")
	yaml := "defaults:\n  mass_conversion:\n    token:\n      hmac_secret_env: " + testTokenEnv + "\n"
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// signedRequest is a request record with a token for its body, as the
// README's minting example makes it.
func signedRequest(t *testing.T, body string, roles ...string) *kgo.Record {
	t.Helper()
	tenant := strings.Split(strings.SplitN(body, `"tenant":"`, 2)[1], `"`)[0]
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, requests.Claims{
		Tenant: tenant, Roles: roles, BodySHA256: requests.BodyHash([]byte(body)),
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute))},
	}).SignedString([]byte(testTokenSecret))
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: requests.DefaultRequestsTopic, Value: []byte(body),
		Headers: []kgo.RecordHeader{{Key: requests.TokenHeader, Value: []byte("Bearer " + tok)}}}
}

// A tenant's key that cannot be loaded stops start-up, naming the tenant.
func TestRunStopsOnMissingTokenKey(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "leadconv.yaml")
	yaml := "tenants:\n  acme:\n    mass_conversion:\n      token:\n        public_key_file: /nonexistent/acme.pem\n"
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	k := kafkatest.New(t, 1, defaultRecordsTopic)
	rs := redistest.New(t)
	code, _, stderr := runMain(t, map[string]string{"LEADCONV_REDIS_URL": rs.URL()}, "run", "--config", p, "--brokers", k.Addrs()[0], "--http-addr", "127.0.0.1:0")
	if code != exitError || !strings.Contains(stderr, "tenants.acme.mass_conversion.token: open /nonexistent/acme.pem") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}
