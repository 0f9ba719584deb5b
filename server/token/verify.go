package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalid is wrapped by every error of Verify: the token is not one to
// trust (a 401 for the server). The error's text says, in one line, what was
// wrong with it.
var ErrInvalid = errors.New("invalid token")

// Claims are what a verified token says.
type Claims struct {
	// User is the token's "sub": never empty, at most MaxUserBytes bytes of
	// UTF-8 without control, format or space characters, U+FFFD, '/', ',',
	// '*' or '?'. It becomes the From of what the request publishes, and the user
	// of its sessions.
	User string
	// Expires is the token's "exp", in UTC. Verify has accepted it up to
	// Leeway past this instant.
	Expires time.Time
	// Rights are those of the "msgbus" claim; none when it is absent.
	Rights Rights
}

// Verify checks raw, a compact JWS, as of now, and returns its claims. The
// token must be at most MaxTokenBytes long, signed with an algorithm the
// Verifier has a key for (HS256 with the secret; RS256, ES256 or EdDSA as
// the public key's type says), have an "exp" not more than Leeway before
// now and an "nbf", if any, not more than Leeway after it, a "sub" that is a
// valid user name (see Claims.User) and, if it has one, a "msgbus" claim
// {"publish": [...], "subscribe": [...]} whose lists ParseRights takes,
// without other keys. "iat", "iss", "aud" and other claims are ignored; a
// "crit" header is refused, as no extension is understood.
//
// Every error wraps ErrInvalid.
func (v *Verifier) Verify(raw string, now time.Time) (*Claims, error) {
	if len(raw) > MaxTokenBytes {
		return nil, invalid("too large: %d bytes, at most %d", len(raw), MaxTokenBytes)
	}
	if raw == "" {
		return nil, invalid("empty")
	}
	var c wireClaims
	p := jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	t, err := p.ParseWithClaims(raw, &c, v.keyfunc)
	if err != nil {
		return nil, v.explain(t, &c, err)
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid("\"crit\" header not supported")
	}
	if err := checkUser(c.Sub); err != nil {
		return nil, invalid("sub %w", err)
	}
	rights, err := c.rights()
	if err != nil {
		return nil, invalid("bad msgbus claim: %w", err)
	}
	return &Claims{User: c.Sub, Expires: c.Exp.Time.UTC(), Rights: rights}, nil
}

// invalid returns an error wrapping ErrInvalid with the formatted reason,
// made one line: control characters in it become '?'. It may wrap errors in
// args with %w.
func invalid(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	msg := oneLine(err.Error())
	return &invalidError{msg: msg, err: err}
}

// An invalidError is an error of Verify.
type invalidError struct {
	msg string
	err error // the reason, which may wrap more
}

func (e *invalidError) Error() string { return ErrInvalid.Error() + ": " + e.msg }

func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// oneLine replaces control characters in s with '?'.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '?'
		}
		return r
	}, s)
}

func isControl(r rune) bool {
	return r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029'
}

// explain turns an error of the jwt parser into one of Verify, naming the
// first thing wrong in the order the parser checks: form, algorithm, key,
// signature, then claims.
func (v *Verifier) explain(t *jwt.Token, c *wireClaims, err error) error {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return invalid("malformed: claim %q is a JSON %s", typeErr.Field, typeErr.Value)
		}
		return invalid("malformed: %s", strings.TrimPrefix(err.Error(), jwt.ErrTokenMalformed.Error()+": "))
	case t == nil || t.Method == nil:
		alg, ok := headerAlg(t)
		if !ok {
			return invalid("no alg in the header")
		}
		return invalid("alg %q not accepted (accepted: %s)", clip(alg), strings.Join(v.algs, ", "))
	case errors.Is(err, errAlg) || !v.accepts(t.Method.Alg()):
		return invalid("alg %q not accepted (accepted: %s)", clip(t.Method.Alg()), strings.Join(v.algs, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad signature")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing exp")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("expired at %s", c.Exp.Time.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("not valid before %s", c.Nbf.Time.UTC().Format(time.RFC3339))
	}
	return invalid("%s", err.Error())
}

// headerAlg returns the "alg" of a token's header, if it is a string.
func headerAlg(t *jwt.Token) (string, bool) {
	if t == nil {
		return "", false
	}
	alg, ok := t.Header["alg"].(string)
	return alg, ok
}

// accepts reports whether alg is one of v's algorithms.
func (v *Verifier) accepts(alg string) bool {
	for _, a := range v.algs {
		if a == alg {
			return true
		}
	}
	return false
}

// wireClaims are the claims of a token as Verify reads them: only those it
// uses, so that a claim it ignores cannot make a token malformed.
type wireClaims struct {
	Sub    string           `json:"sub"`
	Exp    *jwt.NumericDate `json:"exp"`
	Nbf    *jwt.NumericDate `json:"nbf"`
	Msgbus json.RawMessage  `json:"msgbus"`
}

var _ jwt.Claims = (*wireClaims)(nil)

func (c *wireClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp, nil }
func (c *wireClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf, nil }
func (c *wireClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *wireClaims) GetIssuer() (string, error)                   { return "", nil }
func (c *wireClaims) GetSubject() (string, error)                  { return c.Sub, nil }
func (c *wireClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// wireRights is the "msgbus" claim.
type wireRights struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
}

// rights compiles the "msgbus" claim; absent or null, it grants nothing.
func (c *wireClaims) rights() (Rights, error) {
	if len(c.Msgbus) == 0 || string(c.Msgbus) == "null" {
		return Rights{}, nil
	}
	if c.Msgbus[0] != '{' {
		return Rights{}, errors.New(`not an object {"publish": [...], "subscribe": [...]}`)
	}
	var w wireRights
	d := json.NewDecoder(bytes.NewReader(c.Msgbus))
	d.DisallowUnknownFields()
	if err := d.Decode(&w); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Rights{}, fmt.Errorf("%q is not a list of strings", typeErr.Field)
		}
		return Rights{}, err
	}
	return ParseRights(w.Publish, w.Subscribe)
}
