package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminChannelsPublishAndTokens: /admin/channels lists a channel as
// it gets subscribers, /admin/publish/ sends as the server with the From
// given, /admin/tokens mints a token the bus accepts, and pprof answers.
func TestAdminChannelsPublishAndTokens(t *testing.T) {
	as := startAdmin(t, Config{TokenSecret: testSecret, AnonymousSubscribe: []string{"*"}})
	sub := as.subscribe(t, "/msgbus/news", true)
	as.subscribe(t, "/msgbus/", true)
	as.waitSubscribers(t, 2)

	code, body := as.call(t, "GET", "/admin/channels", "")
	var ch struct {
		Channels []struct {
			Channel     string
			Subscribers int
		}
		Subscribers, Sessions int
		Published             uint64
	}
	if code != 200 || json.Unmarshal([]byte(body), &ch) != nil {
		t.Fatalf("GET /admin/channels = %d %q", code, body)
	}
	if len(ch.Channels) != 2 || ch.Channels[0].Channel != "" || ch.Channels[1].Channel != "news" ||
		ch.Channels[1].Subscribers != 1 || ch.Subscribers != 2 || ch.Sessions != 2 {
		t.Fatalf("/admin/channels = %s, want the root and news with one subscriber each", body)
	}

	if code, body := as.call(t, "POST", "/admin/publish/news?from=ops", "maintenance at noon"); code != 204 {
		t.Fatalf("POST /admin/publish/news = %d %q", code, body)
	}
	sub.expect(chunkOf(part("From: ops\r\nContent-Type: text/plain\r\n", "maintenance at noon")))
	if code, body := as.call(t, "POST", "/admin/publish/a//b", "x"); code != 400 {
		t.Errorf("POST /admin/publish/a//b = %d %q, want 400", code, body)
	}
	if code, _ := as.call(t, "GET", "/admin/channels", ""); code != 200 {
		t.Fatal(code)
	}
	_, body = as.call(t, "GET", "/admin/channels", "")
	json.Unmarshal([]byte(body), &ch)
	if ch.Published != 1 {
		t.Errorf("published = %d after one publish, want 1", ch.Published)
	}

	code, body = as.call(t, "POST", "/admin/tokens", `{"sub":"alice","ttl":"10m","publish":["chat/*"],"subscribe":["chat/*"]}`)
	var minted struct{ Token, Expires string }
	if code != 200 || json.Unmarshal([]byte(body), &minted) != nil {
		t.Fatalf("POST /admin/tokens = %d %q", code, body)
	}
	exp, err := time.Parse(time.RFC3339, minted.Expires)
	if err != nil || exp.Sub(time.Now()) > 10*time.Minute || exp.Sub(time.Now()) < 9*time.Minute {
		t.Errorf("expires %q, want in 10 minutes", minted.Expires)
	}
	if code, _, body := do(t, "POST", as.URL("/msgbus/chat/x"), "Bearer "+minted.Token, "hi"); code != 204 {
		t.Errorf("publishing with the minted token = %d %q", code, body)
	}
	if code, _, _ := do(t, "POST", as.URL("/msgbus/news"), "Bearer "+minted.Token, "hi"); code != 403 {
		t.Errorf("publishing beyond the minted rights = %d, want 403", code)
	}
	for _, bad := range []string{`{"sub":""}`, `{"sub":"a","ttl":"1000h"}`, `{"sub":"a","publish":["a,b"]}`, `not json`, `{"sub":"a","admin":true}`} {
		if code, body := as.call(t, "POST", "/admin/tokens", bad); code != 400 || strings.Count(body, "\n") != 1 {
			t.Errorf("POST /admin/tokens %s = %d %q, want 400 with one line", bad, code, body)
		}
	}
	if code, body := as.get(t, "/debug/pprof/goroutine?debug=1", ""); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof = %d %.80q", code, body)
	}
	if code, body := as.get(t, "/debug/pprof/", ""); code != 200 || !strings.Contains(body, "heap") {
		t.Errorf("pprof index = %d %.80q", code, body)
	}
}

// TestAdminTokensNeedASecret: with only a public key, tokens are on but
// nothing can be minted.
func TestAdminTokensNeedASecret(t *testing.T) {
	as := startAdmin(t, Config{})
	if code, _ := as.call(t, "POST", "/admin/tokens", `{"sub":"a"}`); code != http.StatusNotFound {
		t.Errorf("POST /admin/tokens without --token-secret = %d, want 404", code)
	}
}

// TestAdminEndsAnAnonymousSession: a session without a user is ended by
// its id alone.
func TestAdminEndsAnAnonymousSession(t *testing.T) {
	as := startAdmin(t, Config{})
	c := as.dial(t, "GET /msgbus/a HTTP/1.1\r\nHost: x\r\n\r\n")
	c.expect(string(chunkedHead))
	d := device{c, c.Session(), &strings.Builder{}}
	if code, _ := as.call(t, "DELETE", "/admin/sessions/"+d.session, ""); code != 204 {
		t.Fatalf("DELETE /admin/sessions/<id> = %d, want 204", code)
	}
	d.ended(t)
	if code, _ := as.call(t, "DELETE", "/admin/sessions/"+d.session, ""); code != 404 {
		t.Errorf("ending it again = %d, want 404", code)
	}
}
