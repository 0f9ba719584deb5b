package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/msgbus/msgbus/server/token"
)

const testSecret = "test secret of thirty-two bytes!"

// mint makes a real HS256 token for sub with the given rights, valid for ttl
// from now (or from a time in the past, to make an expired one).
func mint(t testing.TB, sub string, publish, subscribe []string, from time.Time, ttl string) string {
	t.Helper()
	v, err := token.NewVerifier(token.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := v.Mint(token.Request{Sub: sub, TTL: ttl, Publish: publish, Subscribe: subscribe}, from)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// do sends a request with the given Authorization ("" for none) and
// returns the status, the WWW-Authenticate header and the body.
func do(t testing.TB, method, url, authz, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/") {
		return resp.StatusCode, "", "" // a stream: its head is enough
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// TestTokenRightsOnEveryPath presents real tokens to every path that
// publishes or receives, and checks 401 (no token, a bad one) against 403
// (a valid token without the right) as PROTOCOL.md §8 says.
func TestTokenRightsOnEveryPath(t *testing.T) {
	ts := startServer(t, Config{TokenSecret: testSecret, AnonymousSubscribe: []string{"public/*"}})
	now := time.Now()
	alice := "Bearer " + mint(t, "alice", []string{"chat/*"}, []string{"chat/*", "!chat/secret"}, now, "1h")
	root := "Bearer " + mint(t, "root", []string{"*"}, []string{"*"}, now, "1h")
	expired := "Bearer " + mint(t, "alice", []string{"*"}, []string{"*"}, now.Add(-2*time.Hour), "1h")
	forged := alice[:len(alice)-4] + "AAAA"
	hs := func(claims jwt.MapClaims) string {
		raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + raw
	}
	rights := map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}}
	notYet := hs(jwt.MapClaims{"sub": "a", "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix(), "msgbus": rights})
	noExp := hs(jwt.MapClaims{"sub": "a", "msgbus": rights})
	huge := hs(jwt.MapClaims{"sub": "a", "exp": now.Add(time.Hour).Unix(), "msgbus": rights, "pad": strings.Repeat("x", 5000)})
	hsOnly := "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0."
	for _, c := range []struct {
		name, method, path, authz string
		want                      int
	}{
		{"publish with the right", "POST", "/msgbus/chat/a", alice, 204},
		{"publish without the right", "POST", "/msgbus/news", alice, 403},
		{"publish without a token", "POST", "/msgbus/chat/a", "", 401},
		{"publish with an expired token", "POST", "/msgbus/chat/a", expired, 401},
		{"publish with a bad signature", "POST", "/msgbus/chat/a", forged, 401},
		{"publish with alg none", "POST", "/msgbus/chat/a", hsOnly, 401},
		{"publish with a token not yet valid", "POST", "/msgbus/chat/a", notYet, 401},
		{"publish with a token without exp", "POST", "/msgbus/chat/a", noExp, 401},
		{"publish with an oversized token", "POST", "/msgbus/chat/a", huge, 401},
		{"/pub/ with the right", "POST", "/pub/chat/a", alice, 204},
		{"/pub/ without the right", "POST", "/pub/news", alice, 403},
		{"/push/ without the right", "POST", "/push/jobs", alice, 403},
		{"/push/ with the right", "POST", "/push/jobs", root, 204},
		{"/bus/ without the right", "POST", "/bus/room", alice, 403},
		{"subscribe with the right", "GET", "/msgbus/chat/a", alice, 200},
		{"subscribe to an excluded channel", "GET", "/msgbus/chat/secret", alice, 403},
		{"subscribe to the root without the right", "GET", "/msgbus/", alice, 403},
		{"subscribe to the root with *", "GET", "/msgbus/", root, 200},
		{"subscribe anonymously where allowed", "GET", "/msgbus/public/x", "", 200},
		{"subscribe anonymously elsewhere", "GET", "/msgbus/chat/a", "", 401},
		{"history with the right", "GET", "/history/chat/a", alice, 200},
		{"history without the right", "GET", "/history/news", alice, 403},
		{"history anonymously", "GET", "/history/chat/a", "", 401},
		{"history with an expired token", "GET", "/history/chat/a", expired, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, challenge, body := do(t, c.method, ts.URL(c.path), c.authz, "hi")
			if code != c.want {
				t.Fatalf("%s %s = %d %q, want %d", c.method, c.path, code, body, c.want)
			}
			switch {
			case code == 401 && c.authz != "" && !strings.Contains(challenge, `error="invalid_token"`):
				t.Errorf("401 for a bad token: WWW-Authenticate %q, want Bearer error=\"invalid_token\"", challenge)
			case code == 401 && c.authz == "" && !strings.HasPrefix(challenge, "Bearer"):
				t.Errorf("401 without a token: WWW-Authenticate %q, want a Bearer challenge", challenge)
			case code >= 400 && strings.Count(body, "\n") != 1:
				t.Errorf("%d body %q, want one line", code, body)
			}
		})
	}
	// The WebSocket patterns are checked at the handshake.
	for _, c := range []struct {
		path, authz string
		want        int
	}{
		{"/sub/chat/a", alice, 101}, {"/sub/news", alice, 403}, {"/sub/", alice, 403},
		{"/bus/chat/a", alice, 101}, {"/bus/news", alice, 403},
		{"/pull/chat/q", alice, 101}, {"/pull/jobs", alice, 403}, {"/pull/jobs", "", 401},
		{"/pub/chat/a", alice, 101}, {"/pub/news", alice, 403},
		{"/push/chat/q", alice, 101}, {"/push/jobs", alice, 403},
		{"/sub/chat/a?token=" + strings.TrimPrefix(alice, "Bearer "), "", 101},
		{"/sub/chat/a?token=" + strings.TrimPrefix(expired, "Bearer "), "", 401},
	} {
		h := http.Header{}
		if c.authz != "" {
			h.Set("Authorization", c.authz)
		}
		_, resp, _ := ts.wsTryDial(t, c.path, h)
		if resp == nil || resp.StatusCode != c.want {
			t.Errorf("WebSocket %s: %v, want %d", c.path, resp, c.want)
		}
	}
}

// TestTokenUserIsTheFromAndCookieWorks publishes with a token in the
// msgbus_token cookie and checks the part's From is the token's sub,
// whatever the request claims.
func TestTokenUserIsTheFromAndCookieWorks(t *testing.T) {
	ts := startServer(t, Config{TokenSecret: testSecret, AnonymousSubscribe: []string{"*"}, AllowOrigins: []string{"http://evil.example"}})
	sub := ts.subscribe(t, "/msgbus/room", true)
	raw := mint(t, "alice", []string{"room"}, nil, time.Now(), "1h")
	req, _ := http.NewRequest("POST", ts.URL("/msgbus/room?from=mallory"), strings.NewReader("hi"))
	req.Header.Set("Cookie", "msgbus_token="+raw)
	req.Header.Set("From", "mallory")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("POST with the cookie: %v %v", resp, err)
	}
	resp.Body.Close()
	// Another site's page cannot publish with the cookie its browser sends
	// along, even from an origin --allow-origin lets in.
	req, _ = http.NewRequest("POST", ts.URL("/msgbus/room"), strings.NewReader("forged"))
	req.Header.Set("Cookie", "msgbus_token="+raw)
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("cross-site POST with the cookie: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	got := sub.readN(len(chunkOf(part("Content-Type: application/octet-stream\r\nFrom: alice\r\n", "hi"))))
	if !strings.Contains(got, "From: alice\r\n") || strings.Contains(got, "mallory") {
		t.Fatalf("part %q, want From: alice", got)
	}
}

// TestStreamEndsWhenItsTokenExpires opens a multipart stream and a
// WebSocket with a token that expires in a second and waits for both to
// end: the multipart one with its closing boundary, the WebSocket with
// close code 4001.
func TestStreamEndsWhenItsTokenExpires(t *testing.T) {
	ts := startServer(t, Config{TokenSecret: testSecret})
	raw := mint(t, "alice", nil, []string{"*"}, time.Now(), "1s")
	c := ts.dial(t, "GET /msgbus/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+raw+"\r\n\r\n")
	c.expect(string(chunkedHead))
	ws, _, err := ts.wsTryDial(t, "/sub/a?token="+raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(c.R)
	if err != nil || !strings.Contains(string(rest), "--00MsgBus00--") {
		t.Fatalf("stream after expiry: %q %v, want the closing boundary and EOF", rest, err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, 4001) {
		t.Fatalf("WebSocket after expiry: %v, want close 4001", err)
	}
}

// TestTokenKeyFileVerifiesItsAlgorithmOnly starts the server with
// --token-key holding an Ed25519 public key: an EdDSA token signed with
// its private half publishes, an HS256 token (even one keyed with the PEM
// file's bytes) and an EdDSA token of another key are 401.
func TestTokenKeyFileVerifiesItsAlgorithmOnly(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	file := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(file, pemBytes, 0o600)
	ts := startServer(t, Config{TokenKey: file})
	claims := jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Hour).Unix(),
		"msgbus": map[string]any{"publish": []string{"*"}}}
	sign := func(m jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	for _, c := range []struct {
		name, authz string
		want        int
	}{
		{"EdDSA with the key", sign(jwt.SigningMethodEdDSA, priv), 204},
		{"EdDSA with another key", sign(jwt.SigningMethodEdDSA, other), 401},
		{"HS256 keyed with the PEM file", sign(jwt.SigningMethodHS256, pemBytes), 401},
		{"HS256 with a secret", sign(jwt.SigningMethodHS256, []byte(testSecret)), 401},
	} {
		if code, _, body := do(t, "POST", ts.URL("/msgbus/a"), c.authz, "x"); code != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, code, body, c.want)
		}
	}
	if code, _ := startAdmin(t, Config{TokenKey: file}).call(t, "POST", "/admin/tokens", `{"sub":"a"}`); code != 404 {
		t.Errorf("minting with only a public key = %d, want 404", code)
	}
}
