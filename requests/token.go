package requests

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TokenHeader is the Kafka record header carrying a request's token:
// "Bearer <JWT>" (or the bare JWT).
const TokenHeader = "authorization"

// Reasons of requests rejected by their token. The request body's roles are
// never trusted: only the token's, which the tenant's key signed.
const (
	ReasonMissingToken   = "missing_token"
	ReasonBadSignature   = "bad_signature"
	ReasonTokenExpired   = "token_expired"
	ReasonWrongTenant    = "wrong_tenant"
	ReasonBodyMismatch   = "body_mismatch"
	ReasonRoleNotAllowed = "role_not_allowed"
)

// TokenLeeway is the clock skew tolerated on a token's exp, nbf and iat.
const TokenLeeway = 30 * time.Second

// Claims are a request token's claims (RFC 7519): sub is the user, exp is
// required.
type Claims struct {
	Tenant string   `json:"tenant"`
	Roles  []string `json:"roles"`
	// BodySHA256 is the lowercase hex SHA-256 of the request JSON exactly
	// as sent (the record value, or a structured CloudEvent's data): a
	// token authorises that body only.
	BodySHA256 string `json:"body_sha256"`
	jwt.RegisteredClaims
}

// BodyHash is the body_sha256 claim of body.
func BodyHash(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

// KeySource names where a tenant's token key comes from; exactly one field
// is set (config: mass_conversion.token).
type KeySource struct {
	HMACSecretFile string // HS256, HS384, HS512
	HMACSecretEnv  string // the variable holding the HMAC secret
	PublicKeyFile  string // PEM (PKIX) Ed25519 or ECDSA public key: EdDSA, ES256/384/512
	JWKSFile       string // JSON Web Key Set of Ed25519 (OKP) and EC keys, chosen by kid
}

// Verifier checks a tenant's request tokens.
type Verifier struct {
	methods []string
	key     jwt.Keyfunc
}

// NewVerifier loads the key src names, reading variables with getenv. Errors
// name the file or variable and never contain the secret.
func NewVerifier(src KeySource, getenv func(string) string) (*Verifier, error) {
	switch {
	case src.HMACSecretFile != "":
		b, err := os.ReadFile(src.HMACSecretFile)
		if err != nil {
			return nil, err
		}
		return hmacVerifier(strings.TrimRight(string(b), "\r\n"), src.HMACSecretFile)
	case src.HMACSecretEnv != "":
		return hmacVerifier(getenv(src.HMACSecretEnv), "variable "+src.HMACSecretEnv)
	case src.PublicKeyFile != "":
		b, err := os.ReadFile(src.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM block", src.PublicKeyFile)
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.PublicKeyFile, err)
		}
		methods, err := methodsOf(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.PublicKeyFile, err)
		}
		return &Verifier{methods: methods, key: func(*jwt.Token) (any, error) { return pub, nil }}, nil
	case src.JWKSFile != "":
		return jwksVerifier(src.JWKSFile)
	}
	return nil, errors.New("no key source")
}

func hmacVerifier(secret, from string) (*Verifier, error) {
	// RFC 7518: an HMAC key at least as long as the hash, 256 bits.
	if len(secret) < 32 {
		return nil, fmt.Errorf("%s: an HMAC secret needs at least 32 bytes, has %d", from, len(secret))
	}
	key := []byte(secret)
	return &Verifier{methods: []string{"HS256", "HS384", "HS512"}, key: func(*jwt.Token) (any, error) { return key, nil }}, nil
}

func methodsOf(pub any) ([]string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return []string{"ES256"}, nil
		case 384:
			return []string{"ES384"}, nil
		case 521:
			return []string{"ES512"}, nil
		}
	}
	return nil, fmt.Errorf("key type %T: allowed are Ed25519 and ECDSA P-256, P-384, P-521 public keys", pub)
}

func jwksVerifier(path string) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keys := map[string]any{}
	var methods []string
	for i, m := range set.Keys {
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: keys[%d]: %w", path, i, err)
		}
		ms, err := methodsOf(k.Key())
		if err != nil {
			return nil, fmt.Errorf("%s: keys[%d]: %w", path, i, err)
		}
		if m.KID == "" {
			return nil, fmt.Errorf("%s: keys[%d]: needs a kid", path, i)
		}
		keys[m.KID] = k.Key()
		methods = append(methods, ms...)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	slices.Sort(methods)
	return &Verifier{methods: slices.Compact(methods), key: func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key with kid %q", kid)
		}
		return k, nil
	}}, nil
}

// tokenOf returns the token of a request record, or "".
func tokenOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, TokenHeader) {
			v := strings.TrimSpace(string(h.Value))
			if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
				v = strings.TrimSpace(v[7:])
			}
			return v
		}
	}
	return ""
}

// Verify checks token for a request of tenant with the given body. It
// returns the token's user and roles, or a rejection reason and a detail
// that names no secret.
func (v *Verifier) Verify(token, tenant string, body []byte, now time.Time) (Requester, string, string) {
	if token == "" {
		return Requester{}, ReasonMissingToken, "the request record has no " + TokenHeader + " header"
	}
	if v == nil {
		return Requester{}, ReasonBadSignature, "the tenant has no mass_conversion.token key configured"
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, v.key, jwt.WithValidMethods(v.methods), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(TokenLeeway), jwt.WithTimeFunc(func() time.Time { return now }))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Requester{}, ReasonTokenExpired, "the token expired"
	case err != nil:
		return Requester{}, ReasonBadSignature, err.Error()
	case c.Tenant != tenant:
		return Requester{}, ReasonWrongTenant, "the token is for another tenant"
	case c.BodySHA256 != BodyHash(body):
		return Requester{}, ReasonBodyMismatch, "body_sha256 differs from the SHA-256 of the request body"
	case strings.TrimSpace(c.Subject) == "":
		return Requester{}, ReasonBadSignature, "the token has no sub"
	}
	return Requester{User: c.Subject, Roles: c.Roles}, "", ""
}
