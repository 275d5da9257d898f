package requests

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testSecret is the HMAC key of the test tenants' tokens.
const testSecret = "test-secret-of-at-least-32-bytes!"

func testVerifier(t *testing.T) *Verifier {
	t.Helper()
	v, err := NewVerifier(KeySource{HMACSecretEnv: "K"}, func(string) string { return testSecret })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mint signs claims for body as a CRM-side tool does.
func mint(t *testing.T, method jwt.SigningMethod, key any, kid string, c Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(tenant string, body []byte, roles ...string) Claims {
	now := time.Now()
	return Claims{Tenant: tenant, Roles: roles, BodySHA256: BodyHash(body), RegisteredClaims: jwt.RegisteredClaims{
		Subject: "u1", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute))}}
}

// signed is a request record whose token (HMAC, testSecret) grants roles.
func signed(t *testing.T, topic string, body []byte, roles ...string) *kgo.Record {
	t.Helper()
	var head struct {
		Tenant string `json:"tenant"`
	}
	_ = json.Unmarshal(body, &head)
	tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor(head.Tenant, body, roles...))
	return &kgo.Record{Topic: topic, Value: body, Headers: []kgo.RecordHeader{{Key: TokenHeader, Value: []byte("Bearer " + tok)}}}
}

func TestVerifyReasons(t *testing.T) {
	t.Parallel()
	body := []byte(`{"tenant":"acme","request_id":"r1","select":{"ids":["L1"]}}`)
	v := testVerifier(t)
	hs := func(c Claims) string { return mint(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	good := claimsFor("acme", body, "sales_admin")
	expired := good
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	expired.IssuedAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	noExp := good
	noExp.ExpiresAt = nil
	other := good
	other.Tenant = "globex"
	noSub := good
	noSub.Subject = ""
	for _, tc := range []struct {
		name, token, reason string
		body                []byte
	}{
		{"valid", hs(good), "", body},
		{"missing token", "", ReasonMissingToken, body},
		{"other key", mint(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", good), ReasonBadSignature, body},
		{"tampered", hs(good)[:len(hs(good))-2] + "xx", ReasonBadSignature, body},
		{"unsigned", mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good), ReasonBadSignature, body},
		{"garbage", "not.a.jwt", ReasonBadSignature, body},
		{"no expiry", hs(noExp), ReasonBadSignature, body},
		{"expired", hs(expired), ReasonTokenExpired, body},
		{"wrong tenant", hs(other), ReasonWrongTenant, body},
		{"other body", hs(good), ReasonBodyMismatch, []byte(`{"tenant":"acme","request_id":"r1","select":{"ids":["L1","L2"]}}`)},
		{"no sub", hs(noSub), ReasonBadSignature, body},
	} {
		who, reason, detail := v.Verify(tc.token, "acme", tc.body, time.Now())
		if reason != tc.reason {
			t.Errorf("%s: reason %q (%s), want %q", tc.name, reason, detail, tc.reason)
		}
		if tc.reason == "" && (who.User != "u1" || !slices.Equal(who.Roles, []string{"sales_admin"})) {
			t.Errorf("%s: requester %+v", tc.name, who)
		}
		if strings.Contains(detail, testSecret) {
			t.Errorf("%s: detail shows the secret", tc.name)
		}
	}
	if _, reason, _ := (*Verifier)(nil).Verify(hs(good), "acme", body, time.Now()); reason != ReasonBadSignature {
		t.Errorf("a tenant without key: reason %q", reason)
	}
}

// Ed25519 and ECDSA public keys, from a PEM file or a JWKS file.
func TestVerifyPublicKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := []byte(`{"tenant":"acme","request_id":"r1","select":{"ids":["L1"]}}`)
	c := claimsFor("acme", body, "sales_admin")
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := func(name string, pub any) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := filepath.Join(dir, "jwks.json")
	set := `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed-1","x":"` + b64(edPub) + `"},` +
		`{"kty":"EC","crv":"P-256","kid":"ec-1","x":"` + b64(ecPriv.X.FillBytes(make([]byte, 32))) + `","y":"` + b64(ecPriv.Y.FillBytes(make([]byte, 32))) + `"}]}`
	if err := os.WriteFile(jwks, []byte(set), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(src KeySource) *Verifier {
		v, err := NewVerifier(src, nil)
		if err != nil {
			t.Fatalf("%+v: %v", src, err)
		}
		return v
	}
	edTok := mint(t, jwt.SigningMethodEdDSA, edPriv, "ed-1", c)
	ecTok := mint(t, jwt.SigningMethodES256, ecPriv, "ec-1", c)
	for _, tc := range []struct {
		name   string
		v      *Verifier
		token  string
		reason string
	}{
		{"ed25519 pem", load(KeySource{PublicKeyFile: pemFile("ed.pem", edPub)}), edTok, ""},
		{"ecdsa pem", load(KeySource{PublicKeyFile: pemFile("ec.pem", &ecPriv.PublicKey)}), ecTok, ""},
		{"ecdsa pem, ed25519 token", load(KeySource{PublicKeyFile: pemFile("ec2.pem", &ecPriv.PublicKey)}), edTok, ReasonBadSignature},
		{"jwks ed25519", load(KeySource{JWKSFile: jwks}), edTok, ""},
		{"jwks ecdsa", load(KeySource{JWKSFile: jwks}), ecTok, ""},
		{"jwks unknown kid", load(KeySource{JWKSFile: jwks}), mint(t, jwt.SigningMethodEdDSA, edPriv, "ed-9", c), ReasonBadSignature},
		{"jwks, HMAC token", load(KeySource{JWKSFile: jwks}), mint(t, jwt.SigningMethodHS256, []byte(testSecret), "ed-1", c), ReasonBadSignature},
	} {
		if _, reason, detail := tc.v.Verify(tc.token, "acme", body, time.Now()); reason != tc.reason {
			t.Errorf("%s: reason %q (%s), want %q", tc.name, reason, detail, tc.reason)
		}
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[KeySource]string{
		{HMACSecretFile: short}:                     "at least 32 bytes",
		{HMACSecretEnv: "EMPTY"}:                    "variable EMPTY: an HMAC secret needs at least 32 bytes",
		{PublicKeyFile: filepath.Join(dir, "none")}: "no such file",
		{PublicKeyFile: jwks}:                       "no PEM block",
		{JWKSFile: pemFile("x.pem", edPub)}:         "x.pem",
	} {
		if _, err := NewVerifier(src, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want %q", src, err, want)
		}
	}
}

// Handle takes the requester from the token: roles written in the body
// grant nothing, and each token problem is its own rejection.
func TestHandleTrustsOnlyTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.handler(nil)
	body := []byte(`{"tenant":"acme","request_id":"t1","requested_by":{"user":"boss","roles":["sales_admin"]},"select":{"ids":["L1"]},"dry_run":true}`)
	unsigned := &kgo.Record{Value: body}
	intern := signed(t, "", body, "intern")
	admin := signed(t, "", body, "sales_admin")
	res, err := h.Handle(context.Background(), "requests", 0, []*kgo.Record{unsigned, intern, admin})
	if err != nil {
		t.Fatal(err)
	}
	o := split(t, res.Out)
	if got := o.types(); !slices.Equal(got, []string{TypeRejected, TypeRejected, TypeCompleted}) {
		t.Fatalf("events %v", got)
	}
	for i, want := range []string{ReasonMissingToken, ReasonRoleNotAllowed} {
		var r Rejection
		if err := json.Unmarshal(o.events[i].Value, &r); err != nil || r.Reason != want {
			t.Errorf("event %d: rejection %+v %v, want %s", i, r, err, want)
		}
	}
}

// In a structured CloudEvent the token signs the data member byte for byte.
func TestHandleTokenOfStructuredEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := []byte(`{ "tenant": "acme", "request_id": "t2", "select": {"ids": ["L1"]}, "dry_run": true }`)
	rec := signed(t, "", data, "sales_admin")
	rec.Value = []byte(`{"specversion":"1.0","id":"e1","source":"crm","type":"io.leadconv.request.v1","datacontenttype":"application/json","data":` + string(data) + `}`)
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte("application/cloudevents+json")})
	res, err := e.handler(nil).Handle(context.Background(), "requests", 0, []*kgo.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	if got := split(t, res.Out).types(); !slices.Equal(got, []string{TypeCompleted}) {
		t.Fatalf("events %v, want completed", got)
	}
}
