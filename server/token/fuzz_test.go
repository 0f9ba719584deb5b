package token

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds Verify arbitrary tokens, starting from valid ones of
// HS256 and EdDSA (with a fixed key, so that the corpus stays meaningful)
// and broken ones. Verify must not panic; it must either refuse with a one
// line error wrapping ErrInvalid, or return claims that keep its promises.
func FuzzVerify(f *testing.F) {
	edKey := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	v := newVerifier(f, Config{Secret: secret, KeyPEM: pemOf(edKey.Public())})
	for _, c := range []map[string]any{
		claims(),
		with(claims(), map[string]any{"msgbus": nil}),
		with(claims(), map[string]any{"nbf": now.Unix(), "msgbus": map[string]any{"publish": []string{"!a", "*"}}}),
		with(claims(), map[string]any{"exp": nil}),
		with(claims(), map[string]any{"sub": "a/b"}),
	} {
		f.Add(sign(f, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims(c)))
		f.Add(sign(f, jwt.SigningMethodEdDSA, edKey, jwt.MapClaims(c)))
	}
	f.Add("")
	f.Add("a.b.c")
	f.Add(raw(`{"alg":"none"}`, mustJSON(claims()), nil))
	f.Add(signRaw(f, `{"alg":"HS256","crit":["x"]}`, mustJSON(claims()), []byte(secret)))
	f.Add(signRaw(f, `{"alg":"HS256"}`, `{"sub":"x","exp":1e300,"msgbus":{"publish":[null]}}`, []byte(secret)))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || strings.ContainsAny(err.Error(), "\r\n") || c != nil {
				t.Fatalf("Verify(%q): %v, %v", token, c, err)
			}
			return
		}
		if len(token) > MaxTokenBytes || checkUser(c.User) != nil || !c.Expires.After(now.Add(-Leeway)) {
			t.Fatalf("Verify(%q) accepted %+v", token, c)
		}
	})
}
