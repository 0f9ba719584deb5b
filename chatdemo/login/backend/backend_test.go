package backend

// The login backend against a real bus, in process: tokens minted through
// its admin listener (with --admin-token) carry the name as From and the
// joined rooms as the only rights; names are checked and held; the page is
// served in login mode.

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/bustest"
)

const (
	testSecret     = "a test secret of thirty-two bytes"
	testAdminToken = "admin token"
)

// A bus is a real server with tokens on and its admin listener, both on
// loopback ports.
type bus struct {
	*bustest.Running
	admin string // the admin listener's URL
}

func startBus(t *testing.T) *bus {
	t.Helper()
	srv, err := server.New(server.Config{TokenSecret: testSecret, AdminToken: testAdminToken})
	if err != nil {
		t.Fatal(err)
	}
	r := bustest.Serve(t, srv, "127.0.0.1:0")
	ln := bustest.Listen(t, "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- srv.ServeAdmin(ln) }()
	t.Cleanup(func() {
		r.Stop(t) // stops the admin listener too
		if err := <-done; err != nil {
			t.Errorf("ServeAdmin: %v", err)
		}
	})
	return &bus{Running: r, admin: "http://" + ln.Addr().String()}
}

// startBackend serves a Backend for the bus, with cfg's zero fields
// filled in.
func startBackend(t *testing.T, b *bus, cfg Config) (*Backend, *httptest.Server) {
	t.Helper()
	if cfg.Bus == "" {
		cfg.Bus = b.URL("")
	}
	if cfg.Admin == "" {
		cfg.Admin = b.admin
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = testAdminToken
	}
	if cfg.Dir == "" {
		cfg.Dir = "../.."
	}
	be, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(be)
	t.Cleanup(hs.Close)
	return be, hs
}

// A browser is an HTTP client with its own cookies: one person.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, hs *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, base: hs.URL}
}

// session calls the session API and returns the status and the answer.
func (br *browser) session(method, body string) (int, sessionAnswer, string) {
	br.t.Helper()
	req, _ := http.NewRequest(method, br.base+"/session", strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := br.c.Do(req)
	if err != nil {
		br.t.Fatalf("%s /session: %v", method, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var ans sessionAnswer
	var e struct{ Error string }
	json.Unmarshal(raw, &ans)
	json.Unmarshal(raw, &e)
	return res.StatusCode, ans, e.Error
}

// login logs in and fails the test unless it succeeds.
func (br *browser) login(name string, rooms ...string) sessionAnswer {
	br.t.Helper()
	body, _ := json.Marshal(loginRequest{Name: name, Rooms: rooms})
	code, ans, why := br.session("POST", string(body))
	if code != 200 || ans.Token == "" {
		br.t.Fatalf("logging in as %s with %v: %d %s", name, rooms, code, why)
	}
	return ans
}

// onBus makes a request to the bus with a token and returns the status
// and body.
func onBus(t *testing.T, method, url, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

func TestLoginTokenPostsAsTheNameToTheJoinedRoomsOnly(t *testing.T) {
	b := startBus(t)
	_, hs := startBackend(t, b, Config{Rooms: []string{"lobby", "random", "help"}, TTL: time.Minute})
	alice := newBrowser(t, hs)

	code, ans, _ := alice.session("GET", "")
	if code != 200 || ans.User != "" || ans.Token != "" || strings.Join(ans.Offered, ",") != "lobby,random,help" || ans.Bus != b.URL("") {
		t.Fatalf("GET /session before logging in = %d %+v, want no user, the rooms offered and the bus", code, ans)
	}
	ans = alice.login("alice", "lobby")
	if ans.User != "alice" || strings.Join(ans.Rooms, ",") != "lobby" || ans.ExpiresIn < 55 || ans.ExpiresIn > 60 {
		t.Fatalf("logged in: %+v, want alice in lobby for a minute", ans)
	}
	tok := ans.Token

	// The body names bob: the bus says alice.
	if code, body := onBus(t, "POST", b.URL("/msgbus/chat/lobby"), tok, `{"name":"bob","text":"I am bob"}`); code != 204 {
		t.Fatalf("posting to the lobby with alice's token = %d %q", code, body)
	}
	code, body := onBus(t, "GET", b.URL("/history/chat/lobby"), tok, "")
	var hist struct{ Messages []struct{ From, Body string } }
	if code != 200 || json.Unmarshal([]byte(body), &hist) != nil || len(hist.Messages) != 1 {
		t.Fatalf("the lobby's history with alice's token = %d %q", code, body)
	}
	if m := hist.Messages[0]; m.From != "alice" {
		t.Errorf("a line alice posted naming bob in its body is from %q, want alice", m.From)
	}

	for _, tc := range []struct {
		what, method, path, tok string
		want                    int
	}{
		{"posting to a room not joined", "POST", "/msgbus/chat/random", tok, 403},
		{"reading a room not joined", "GET", "/history/chat/random", tok, 403},
		{"reading every room at once", "GET", "/history/chat", tok, 403},
		{"posting to bob's address", "POST", "/msgbus/@bob", tok, 403},
		{"posting with the sub changed to bob", "POST", "/msgbus/chat/lobby", bustest.EditedToken(t, tok, "bob"), 401},
		{"posting without a token", "POST", "/msgbus/chat/lobby", "", 401},
	} {
		if code, body := onBus(t, tc.method, b.URL(tc.path), tc.tok, `{"text":"x"}`); code != tc.want {
			t.Errorf("%s: %s %s = %d %q, want %d", tc.what, tc.method, tc.path, code, body, tc.want)
		}
	}

	// Joining a room more: the same name, a token with that room too.
	ans = alice.login("alice", "random", "lobby")
	if strings.Join(ans.Rooms, ",") != "lobby,random" {
		t.Fatalf("rooms after joining random: %v, want lobby,random (in the order offered)", ans.Rooms)
	}
	if code, body := onBus(t, "POST", b.URL("/msgbus/chat/random"), ans.Token, `{"text":"hi random"}`); code != 204 {
		t.Errorf("posting to random after joining it = %d %q", code, body)
	}
	// Renewing: a new token for the same name and rooms.
	_, again, _ := alice.session("GET", "")
	if again.User != "alice" || again.Token == "" || strings.Join(again.Rooms, ",") != "lobby,random" {
		t.Errorf("GET /session when logged in = %+v, want alice's session with a token", again)
	}
}

func TestLoginChecksNamesAndRooms(t *testing.T) {
	b := startBus(t)
	_, hs := startBackend(t, b, Config{Rooms: []string{"a", "b", "c", "d", "e"}})
	br := newBrowser(t, hs)
	for _, tc := range []struct {
		body string
		code int
		why  string
	}{
		{`{"name":"","rooms":["a"]}`, 400, "a name is"},
		{`{"name":"a b","rooms":["a"]}`, 400, "a name is"},
		{`{"name":"<b>x</b>","rooms":["a"]}`, 400, "a name is"},
		{`{"name":"-x","rooms":["a"]}`, 400, "a name is"},
		{`{"name":"élise","rooms":["a"]}`, 400, "a name is"},
		{`{"name":"alicealicealicealicealice","rooms":["a"]}`, 400, "a name is"},
		{`{"name":"alice","rooms":[]}`, 400, "join at least one room"},
		{`{"name":"alice","rooms":["z"]}`, 400, "no room #z here; the rooms are #a, #b, #c, #d, #e"},
		{`{"name":"alice","rooms":["a","b","c","d","e"]}`, 400, "join at most 4 rooms"},
		{`{"name":"alice","rooms":"a"}`, 400, "send JSON"},
	} {
		if code, _, why := br.session("POST", tc.body); code != tc.code || !strings.Contains(why, tc.why) {
			t.Errorf("POST /session %s = %d %q, want %d %q", tc.body, code, why, tc.code, tc.why)
		}
	}
	// A form of another site cannot post JSON without asking first.
	res, err := http.Post(hs.URL+"/session", "text/plain", strings.NewReader(`{"name":"alice","rooms":["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("POST /session as text/plain = %d, want 415", res.StatusCode)
	}
	if ans := br.login("  Neil.O_Brien-2 ", "a"); ans.User != "Neil.O_Brien-2" {
		t.Errorf("logged in as %q, want the name without the spaces around it", ans.User)
	}
}

func TestLoginHoldsANameWhileItsUserIsOnline(t *testing.T) {
	b := startBus(t)
	be, hs := startBackend(t, b, Config{})
	alice, mallory := newBrowser(t, hs), newBrowser(t, hs)
	tok := alice.login("Alice", "lobby").Token

	// Just logged in: the name is hers, in any case.
	for _, name := range []string{"Alice", "alice", "ALICE"} {
		body, _ := json.Marshal(loginRequest{Name: name, Rooms: []string{"lobby"}})
		if code, _, why := mallory.session("POST", string(body)); code != 409 || !strings.Contains(why, "Alice is here") {
			t.Errorf("another browser logging in as %s = %d %q, want 409", name, code, why)
		}
	}
	// Past the grace, held while she has a stream on the bus.
	be.grace = 0
	req, _ := http.NewRequest("GET", b.URL("/msgbus/chat/lobby"), nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("alice's stream: %v %v", res, err)
	}
	if code, _, why := mallory.session("POST", `{"name":"alice","rooms":["lobby"]}`); code != 409 {
		t.Errorf("logging in as alice while her stream is open = %d %q, want 409", code, why)
	}
	res.Body.Close()
	// Her stream gone, the name is free; her browser learns it lost it.
	bustest.Until(t, func() string { return "the bus still lists alice's stream" }, func() bool {
		code, _, _ := mallory.session("POST", `{"name":"alice","rooms":["lobby"]}`)
		return code == 200
	})
	if code, ans, _ := alice.session("GET", ""); code != 200 || ans.User != "" || !strings.Contains(ans.Note, "log in again") {
		t.Errorf("alice's GET /session after her name was taken = %d %+v, want no user and a note", code, ans)
	}

	// Logging out frees the name at once and ends the user's streams.
	be.grace = Grace
	carol := newBrowser(t, hs)
	tok = carol.login("carol", "lobby").Token
	req, _ = http.NewRequest("GET", b.URL("/msgbus/chat/lobby"), nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err = http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("carol's stream: %v %v", res, err)
	}
	defer res.Body.Close()
	if code, _, _ := carol.session("DELETE", ""); code != 204 {
		t.Errorf("DELETE /session = %d, want 204", code)
	}
	if _, err := io.Copy(io.Discard, bufio.NewReader(res.Body)); err != nil {
		t.Logf("carol's stream ended: %v", err)
	}
	if code, ans, _ := carol.session("GET", ""); ans.User != "" {
		t.Errorf("GET /session after logging out = %d %+v, want no user", code, ans)
	}
	newBrowser(t, hs).login("carol", "lobby")
}

func TestLoginSaysWhatTheAdminListenerRefused(t *testing.T) {
	b := startBus(t)
	_, hs := startBackend(t, b, Config{AdminToken: "wrong"})
	if code, _, why := newBrowser(t, hs).session("POST", `{"name":"alice","rooms":["lobby"]}`); code != 502 || !strings.Contains(why, "check --admin-token") {
		t.Errorf("logging in with a wrong admin token = %d %q, want 502 naming --admin-token", code, why)
	}
	_, hs = startBackend(t, b, Config{Admin: "http://127.0.0.1:1"})
	if code, _, why := newBrowser(t, hs).session("POST", `{"name":"alice","rooms":["lobby"]}`); code != 502 || !strings.Contains(why, "admin listener") {
		t.Errorf("logging in with the admin listener away = %d %q, want 502", code, why)
	}
}

func TestLoginServesThePageInLoginMode(t *testing.T) {
	b := startBus(t)
	_, hs := startBackend(t, b, Config{})
	get := func(path string) (*http.Response, string) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, string(body)
	}
	res, body := get("/")
	if res.StatusCode != 200 || !strings.Contains(body, `<meta name="msgbus-login" content="session">`) {
		t.Errorf("GET / = %d, without the login meta filled in", res.StatusCode)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' "+b.URL("")) || !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("the page's Content-Security-Policy %q does not let it reach the bus, or lets in other scripts", csp)
	}
	if res, body := get("/chat.js"); res.StatusCode != 200 || !strings.Contains(body, "msgbus-login") {
		t.Errorf("GET /chat.js = %d", res.StatusCode)
	}
	if res, _ := get("/_msgbus/ui.css"); res.StatusCode != 302 || res.Header.Get("Location") != b.URL("/_msgbus/ui.css") {
		t.Errorf("GET /_msgbus/ui.css = %d to %q, want a redirect to the bus's", res.StatusCode, res.Header.Get("Location"))
	}
	for _, path := range []string{"/login/main.go", "/index.html/", "/../chat.js", "/session/x"} {
		if res, _ := get(path); res.StatusCode/100 == 2 {
			t.Errorf("GET %s = %d, want nothing but the page", path, res.StatusCode)
		}
	}
}

func TestNewSaysWhatIsWrong(t *testing.T) {
	noMeta := t.TempDir()
	for _, f := range []string{"index.html", "chat.js", "chat.css"} {
		os.WriteFile(filepath.Join(noMeta, f), []byte("<html>"), 0o644)
	}
	ok := Config{Bus: "http://localhost:8888", Admin: "http://127.0.0.1:9090", Dir: "../.."}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Bus = "localhost:8888" }, "--bus"},
		{func(c *Config) { c.Admin = "" }, "--admin"},
		{func(c *Config) { c.Rooms = []string{"Lobby"} }, "--rooms"},
		{func(c *Config) { c.TTL = time.Second }, "--ttl"},
		{func(c *Config) { c.Dir = t.TempDir() }, "--dir"},
		{func(c *Config) { c.Dir = noMeta }, "msgbus-login"},
	} {
		cfg := ok
		tc.change(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", cfg, err, tc.want)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(%+v): %v", ok, err)
	}
}
