package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// now is the instant every test verifies at.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const secret = "an HS256 secret of at least thirty-two bytes"

// A keyPair is a signing key of one algorithm and its public half in PEM.
type keyPair struct {
	alg    string
	method jwt.SigningMethod
	priv   crypto.Signer
	pem    []byte
}

// keys are generated once per test binary: RSA takes a while, more so
// under the race detector.
var keys = sync.OnceValue(func() map[string]keyPair {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]keyPair{
		"RS256": {"RS256", jwt.SigningMethodRS256, rsaKey, pemOf(rsaKey.Public())},
		"ES256": {"ES256", jwt.SigningMethodES256, ecKey, pemOf(ecKey.Public())},
		"EdDSA": {"EdDSA", jwt.SigningMethodEdDSA, edKey, pemOf(edKey.Public())},
	}
})

// otherKeys are keys of the same types that the verifiers do not know.
var otherKeys = sync.OnceValue(func() map[string]crypto.Signer {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{"RS256": rsaKey, "ES256": ecKey, "EdDSA": edKey}
})

func pemOf(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claims are a token's claims for a test: a valid user and expiry, with
// rights to chat/*.
func claims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":    "alice",
		"exp":    now.Add(time.Hour).Unix(),
		"msgbus": map[string]any{"publish": []string{"chat/*"}, "subscribe": []string{"chat/*", "@alice"}},
	}
}

// with returns c changed by edits; a nil value deletes the claim.
func with(c jwt.MapClaims, edits map[string]any) jwt.MapClaims {
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs c with method and key.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("signing with %s: %v", method.Alg(), err)
	}
	return s
}

// signAlg signs c with the test key of alg: the secret for HS256.
func signAlg(t testing.TB, alg string, c jwt.Claims) string {
	t.Helper()
	if alg == "HS256" {
		return sign(t, jwt.SigningMethodHS256, []byte(secret), c)
	}
	k := keys()[alg]
	return sign(t, k.method, k.priv, c)
}

// newVerifier returns a Verifier for cfg or fails the test.
func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// verifierFor returns a Verifier that accepts alg only.
func verifierFor(t testing.TB, alg string) *Verifier {
	t.Helper()
	if alg == "HS256" {
		return newVerifier(t, Config{Secret: secret})
	}
	return newVerifier(t, Config{KeyPEM: keys()[alg].pem})
}

// raw builds a token from a header and claims as JSON, and a signature, all
// as given: for tokens no library would sign.
func raw(header, claims string, sig []byte) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "." + enc.EncodeToString(sig)
}

// signRaw signs the header and claims, given as JSON, with HS256 and key.
func signRaw(t testing.TB, header, claims string, key []byte) string {
	t.Helper()
	enc := base64.RawURLEncoding
	text := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(text, key)
	if err != nil {
		t.Fatal(err)
	}
	return text + "." + enc.EncodeToString(sig)
}

// mustJSON encodes v.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkInvalid fails the test unless err wraps ErrInvalid, is one line and
// contains want.
func checkInvalid(t testing.TB, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("no error; want one containing %q", want)
	case !errors.Is(err, ErrInvalid):
		t.Fatalf("error %q does not wrap ErrInvalid", err)
	case strings.ContainsAny(err.Error(), "\r\n"):
		t.Fatalf("error %q is not one line", err)
	case !strings.Contains(err.Error(), want):
		t.Fatalf("error %q; want one containing %q", err, want)
	}
}

func smallRSAKey(t testing.TB) crypto.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func p384Key(t testing.TB) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs1Of(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	return x509.MarshalPKCS1PublicKey(k.Public().(*rsa.PublicKey))
}

// certOf returns a self-signed certificate of k's public key.
func certOf(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "msgbus token signer"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
