package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Lifetimes of minted tokens.
const (
	// DefaultTTL is the lifetime of a token whose Request names none.
	DefaultTTL = time.Hour
	// MaxTTL is the longest lifetime Mint grants: 30 days. A longer-lived
	// token is a password that cannot be revoked short of changing the
	// secret.
	MaxTTL = 30 * 24 * time.Hour
)

// ErrNoSecret is returned by Mint when the Verifier has no HS256 secret to
// sign with.
var ErrNoSecret = errors.New("token: minting needs --token-secret")

// A Request asks Mint for a token: the body of POST /admin/tokens.
type Request struct {
	Sub       string   `json:"sub"`       // the user: see Claims.User
	TTL       string   `json:"ttl"`       // a time.ParseDuration string ("90m"); empty: DefaultTTL
	Publish   []string `json:"publish"`   // patterns, see ParseRights
	Subscribe []string `json:"subscribe"` // patterns, see ParseRights
}

// Mint signs, with the HS256 secret, a token for req valid from now for
// req.TTL, and returns it with its expiry (in UTC, as the token's "exp"
// holds it: now + TTL rounded down to a whole second). It checks the request as Verify checks a token,
// so what it mints verifies until it expires. It fails with ErrNoSecret
// without a secret; its other errors say what is wrong with req: a bad sub,
// a TTL that does not parse, is under a second or exceeds MaxTTL, a bad
// pattern, or rights too long for a token of MaxTokenBytes.
func (v *Verifier) Mint(req Request, now time.Time) (token string, expires time.Time, err error) {
	if v.secret == nil {
		return "", time.Time{}, ErrNoSecret
	}
	if err := checkUser(req.Sub); err != nil {
		return "", time.Time{}, fmt.Errorf("token: sub %w", err)
	}
	ttl := DefaultTTL
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return "", time.Time{}, fmt.Errorf("token: ttl %q: not a duration such as \"1h\" or \"90m\"", clip(req.TTL))
		}
	}
	if ttl < time.Second || ttl > MaxTTL {
		return "", time.Time{}, fmt.Errorf("token: ttl %s: must be at least 1s and at most %s (30 days)", ttl, MaxTTL)
	}
	if _, err := ParseRights(req.Publish, req.Subscribe); err != nil {
		return "", time.Time{}, fmt.Errorf("token: %w", err)
	}
	expires = time.Unix(now.Add(ttl).Unix(), 0).UTC()
	c := mintClaims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   req.Sub,
		ExpiresAt: jwt.NewNumericDate(expires),
		IssuedAt:  jwt.NewNumericDate(now),
	}}
	if len(req.Publish)+len(req.Subscribe) > 0 {
		c.Msgbus = &wireRights{Publish: req.Publish, Subscribe: req.Subscribe}
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(v.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: signing: %w", err)
	}
	if len(token) > MaxTokenBytes {
		return "", time.Time{}, fmt.Errorf("token: the rights make a token of %d bytes; at most %d", len(token), MaxTokenBytes)
	}
	return token, expires, nil
}

// mintClaims are the claims of a minted token.
type mintClaims struct {
	jwt.RegisteredClaims
	Msgbus *wireRights `json:"msgbus,omitempty"`
}
