package server

import (
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/token"
)

// An identity is who a request is (PROTOCOL.md §8): its user, which becomes
// the From of what it publishes and owns its sessions, its rights, and when
// its token expires. It is made once per request or stream, never per
// message.
type identity struct {
	user    string
	expires time.Time     // zero: no token, no expiry
	rights  *token.Rights // nil: every right (tokens off, or Basic auth)
	token   bool          // rights came from a token (403 when short), not anonymity (401)
}

// canPublish and canSubscribe report whether the identity holds the right
// for channel ("" is the root).
func (id identity) canPublish(channel string) bool {
	return id.rights == nil || id.rights.CanPublish(channel)
}

func (id identity) canSubscribe(channel string) bool {
	return id.rights == nil || id.rights.CanSubscribe(channel)
}

// expired reports whether the identity's token has expired by now.
func (id identity) expired(now time.Time) bool {
	return !id.expires.IsZero() && now.After(id.expires)
}

// tokenCookie is the cookie a same-origin page presents its token in.
const tokenCookie = "msgbus_token"

// newAuth builds the token verifier and the anonymous rights from cfg; no
// verifier when tokens are off. Errors name the flag to fix.
func newAuth(cfg *Config) (*token.Verifier, token.Rights, error) {
	if cfg.TokenSecret == "" && cfg.TokenKey == "" {
		if len(cfg.AnonymousPublish)+len(cfg.AnonymousSubscribe) > 0 {
			return nil, token.Rights{}, fmt.Errorf("server: --anonymous-publish and --anonymous-subscribe need tokens: set --token-secret or --token-key")
		}
		return nil, token.Rights{}, nil
	}
	tc := token.Config{Secret: cfg.TokenSecret}
	if cfg.TokenKey != "" {
		pem, err := os.ReadFile(cfg.TokenKey)
		if err != nil {
			return nil, token.Rights{}, fmt.Errorf("server: --token-key: %w", err)
		}
		tc.KeyPEM = pem
	}
	v, err := token.NewVerifier(tc)
	if err != nil {
		return nil, token.Rights{}, fmt.Errorf("server: %w", err)
	}
	anon, err := token.ParseRights(splitPatterns(cfg.AnonymousPublish), splitPatterns(cfg.AnonymousSubscribe))
	if err != nil {
		return nil, token.Rights{}, fmt.Errorf("server: --anonymous-publish/--anonymous-subscribe: %w", err)
	}
	return v, anon, nil
}

// splitPatterns splits comma-separated pattern lists into their entries.
func splitPatterns(lists []string) []string {
	var out []string
	for _, l := range lists {
		for p := range strings.SplitSeq(l, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// authenticate finds out who the request is. Without tokens, it checks HTTP
// Basic auth when a secret is set. With tokens, a token in the
// Authorization header, the token query parameter or the msgbus_token
// cookie is verified (401 when bad); valid Basic auth has every right; a
// request with neither has the anonymous rights, checked by the route
// (401 when short, see deny). It answers itself and reports false when the
// request may not go on.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (identity, bool) {
	authz := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if s.tokens == nil {
		if s.cfg.Secret == "" {
			return identity{}, true
		}
		if user, ok := s.basicUser(authz); ok {
			return identity{user: user}, true // any bytes: part headers percent-encode it
		}
		s.challenge(ctx, false)
		fail(ctx, fasthttp.StatusUnauthorized, "unauthorized: use HTTP Basic auth with the bus's secret as password")
		return identity{}, false
	}
	raw := ""
	if v, ok := cutScheme(authz, "bearer "); ok {
		raw = v
	} else if v := ctx.QueryArgs().Peek("token"); len(v) > 0 {
		raw = string(v)
	} else if v := ctx.Request.Header.Cookie(tokenCookie); len(v) > 0 && len(authz) == 0 && s.cookieOrigin(ctx) {
		raw = string(v)
	}
	if raw == "" {
		if user, ok := s.basicUser(authz); ok {
			return identity{user: user}, true
		}
		return identity{rights: &s.anonymous}, true
	}
	c, err := s.tokens.Verify(raw, time.Now())
	if err != nil {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="msgbus", error="invalid_token"`)
		fail(ctx, fasthttp.StatusUnauthorized, "unauthorized: "+firstLine(err.Error())+": get a new token")
		return identity{}, false
	}
	// The token verifies until Leeway past its exp: its streams end then,
	// or a client that reconnects at exp would be let in and cut at once.
	return identity{user: c.User, expires: c.Expires.Add(token.Leeway), rights: &c.Rights, token: true}, true
}

// cookieOrigin reports whether the request may authenticate with the
// token cookie: a browser sends cookies along with requests other sites'
// pages make, so only a same-origin page (or a request without Origin, a
// navigation or a tool) may; pages of --allow-origin present the token
// themselves (?token= or the header), which no other site can.
func (s *Server) cookieOrigin(ctx *fasthttp.RequestCtx) bool {
	v := s.judgeOrigin(ctx)
	return v == originNone || v == originSame
}

// basicUser returns the user of valid Basic auth with the bus's secret.
func (s *Server) basicUser(authz []byte) (string, bool) {
	if s.cfg.Secret == "" {
		return "", false
	}
	user, pass, ok := basicAuth(authz)
	return user, ok && subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Secret)) == 1
}

// cutScheme returns the credentials of an Authorization header of the
// given scheme ("bearer ", lower case).
func cutScheme(h []byte, scheme string) (string, bool) {
	if len(h) <= len(scheme) || !strings.EqualFold(string(h[:len(scheme)]), scheme) {
		return "", false
	}
	return strings.TrimSpace(string(h[len(scheme):])), true
}

// challenge sets the WWW-Authenticate headers of a 401: Bearer when tokens
// are on, Basic when a secret is set.
func (s *Server) challenge(ctx *fasthttp.RequestCtx, bearer bool) {
	if bearer {
		ctx.Response.Header.Add(fasthttp.HeaderWWWAuthenticate, `Bearer realm="msgbus"`)
	}
	if s.cfg.Secret != "" {
		ctx.Response.Header.Add(fasthttp.HeaderWWWAuthenticate, `Basic realm="msgbus"`)
	}
}

// deny answers a request whose identity lacks the right it needs (what:
// "publish to", "subscribe to"): 403 for a token's holder, 401 with a
// challenge for an anonymous request.
func (s *Server) deny(ctx *fasthttp.RequestCtx, who identity, what, channel string) {
	name := channel
	if name == "" {
		name = "the root"
	}
	if who.token {
		fail(ctx, fasthttp.StatusForbidden, "forbidden: the token may not "+what+" "+name)
		return
	}
	s.challenge(ctx, true)
	fail(ctx, fasthttp.StatusUnauthorized, "unauthorized: a token is needed to "+what+" "+name)
}
