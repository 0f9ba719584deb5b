package token

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMintedTokensVerify: what Mint makes, Verify takes, with the same user,
// expiry and rights, on a Verifier that also has a key.
func TestMintedTokensVerify(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret, KeyPEM: keys()["ES256"].pem})
	at := now.Add(1500 * time.Millisecond) // expiry is rounded down to a second
	tests := []struct {
		req     Request
		ttl     time.Duration
		pub     []string // channels it may publish to
		sub     []string // channels it may subscribe to
		nothing bool
	}{
		{Request{Sub: "alice"}, DefaultTTL, nil, nil, true},
		{Request{Sub: "alice", TTL: "90m", Subscribe: []string{"*"}}, 90 * time.Minute, nil, []string{"", "a/b"}, false},
		{Request{Sub: "backend", TTL: "720h", Publish: []string{"@*"}}, MaxTTL, []string{"@alice"}, nil, false},
		{Request{Sub: "bob", TTL: "1s", Publish: []string{"!chat/secret", "chat/*"}, Subscribe: []string{"chat/*", "@bob"}}, time.Second, []string{"chat/a"}, []string{"chat/secret", "@bob"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.req.Sub+"/"+tt.req.TTL, func(t *testing.T) {
			token, expires, err := v.Mint(tt.req, at)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if want := now.Add(time.Second + tt.ttl); !expires.Equal(want) || expires.Location() != time.UTC {
				t.Fatalf("expires %v, want %v in UTC", expires, want)
			}
			c, err := v.Verify(token, at)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.User != tt.req.Sub || c.Expires != expires {
				t.Fatalf("claims %q %v; want %q %v", c.User, c.Expires, tt.req.Sub, expires)
			}
			for _, ch := range tt.pub {
				if !c.Rights.CanPublish(ch) {
					t.Errorf("may not publish to %q", ch)
				}
			}
			for _, ch := range tt.sub {
				if !c.Rights.CanSubscribe(ch) {
					t.Errorf("may not subscribe to %q", ch)
				}
			}
			if c.Rights.IsZero() != tt.nothing {
				t.Errorf("IsZero %v", c.Rights.IsZero())
			}
			if c.Rights.CanPublish("chat/secret") {
				t.Error("may publish to chat/secret")
			}
			// It verifies until it expires, and no longer.
			if _, err := v.Verify(token, expires.Add(-time.Nanosecond)); err != nil {
				t.Fatalf("Verify just before expiry: %v", err)
			}
			_, err = v.Verify(token, expires.Add(Leeway))
			checkInvalid(t, err, "expired")
		})
	}
}

func TestMintRefusesBadRequests(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret})
	long := make([]string, 32)
	for i := range long {
		long[i] = strings.Repeat("x", 128)
	}
	tests := []struct {
		req  Request
		want string
	}{
		{Request{}, "token: sub is empty"},
		{Request{Sub: "a/b"}, "token: sub holds '/'"},
		{Request{Sub: "a\xffb"}, "token: sub is not UTF-8"},
		{Request{Sub: "alice", TTL: "721h"}, "token: ttl 721h0m0s: must be at least 1s and at most 720h0m0s (30 days)"},
		{Request{Sub: "alice", TTL: "31d"}, `token: ttl "31d": not a duration`},
		{Request{Sub: "alice", TTL: "0s"}, "must be at least 1s"},
		{Request{Sub: "alice", TTL: "999ms"}, "must be at least 1s"},
		{Request{Sub: "alice", TTL: "-1h"}, "must be at least 1s"},
		{Request{Sub: "alice", TTL: "1h\n"}, `not a duration`},
		{Request{Sub: "alice", Publish: []string{"a,b"}}, `token: publish entry 1 "a,b": contains ','`},
		{Request{Sub: "alice", Subscribe: []string{""}}, "token: subscribe entry 1"},
		{Request{Sub: "alice", Publish: long, Subscribe: long}, "token: the rights make a token of"},
	}
	for _, tt := range tests {
		token, _, err := v.Mint(tt.req, now)
		if err == nil || !strings.Contains(err.Error(), tt.want) || token != "" {
			t.Errorf("Mint(%+v): %q, %v; want an error containing %q", tt.req, token, err, tt.want)
		}
		if errors.Is(err, ErrNoSecret) || errors.Is(err, ErrInvalid) {
			t.Errorf("Mint(%+v): %v is not a request error", tt.req, err)
		}
	}
}

func TestMintNeedsTheSecret(t *testing.T) {
	v := newVerifier(t, Config{KeyPEM: keys()["EdDSA"].pem})
	_, _, err := v.Mint(Request{Sub: "alice"}, now)
	if !errors.Is(err, ErrNoSecret) || !strings.Contains(err.Error(), "--token-secret") {
		t.Fatalf("Mint without a secret: %v; want ErrNoSecret", err)
	}
}
