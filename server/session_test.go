package server

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/bustest"
	"github.com/msgbus/msgbus/server/engine/redis/redistest"
)

// device is one subscriber's raw stream, with its session id.
type device struct {
	*rawConn
	session string
	seen    *strings.Builder // read and not yet matched
}

// openDevice subscribes to path with token raw and reads the head.
func openDevice(t *testing.T, addr, path, raw string) device {
	t.Helper()
	c := &rawConn{bustest.Dial(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+raw+"\r\n\r\n")}
	c.expect(string(chunkedHead))
	if c.Session() == "" {
		t.Fatalf("GET %s: no Msgbus-Session header", path)
	}
	return device{c, c.Session(), &strings.Builder{}}
}

// waitFor reads the stream until it has held want, within a few seconds,
// and forgets what came up to it.
func (d device) waitFor(t *testing.T, want string) (before string) {
	t.Helper()
	d.SetReadDeadline(time.Now().Add(bustest.Timeout))
	buf := make([]byte, 4096)
	for !strings.Contains(d.seen.String(), want) {
		n, err := d.R.Read(buf)
		d.seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream of session %s: %v after %q, want %q", d.session, err, d.seen.String(), want)
		}
	}
	before, rest, _ := strings.Cut(d.seen.String(), want)
	d.seen.Reset()
	d.seen.WriteString(rest)
	return before
}

// ended reads the stream to its end and fails unless it closed cleanly.
func (d device) ended(t *testing.T) {
	t.Helper()
	d.SetReadDeadline(time.Now().Add(bustest.Timeout))
	more, err := io.ReadAll(d.R)
	rest := d.seen.String() + string(more)
	if err != nil || !strings.HasSuffix(string(rest), "--00MsgBus00--\r\n\r\n0\r\n\r\n") {
		t.Fatalf("session %s: %q %v, want its stream closed with the closing boundary", d.session, rest, err)
	}
}

// admin sends method path to the admin listener and returns the status
// and body.
func (as *adminServer) call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+as.adminAddr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := as.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sessionsOf lists a user's sessions through the admin API.
func (as *adminServer) sessionsOf(t *testing.T, user string) []session {
	t.Helper()
	code, body := as.call(t, "GET", "/admin/users/"+user+"/sessions", "")
	var v struct{ Sessions []session }
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET sessions of %s = %d %q", user, code, body)
	}
	return v.Sessions
}

// TestSessionsAddressesBindAndLogout: two devices of alice and one of
// bob. A message to @alice reaches both of alice's devices; binding one
// device to a channel mid-stream brings it that channel's messages,
// marked with Content-Location, and unbinding stops them; logging out one
// device leaves the other; logging out everywhere ends the rest at once.
func TestSessionsAddressesBindAndLogout(t *testing.T) {
	as := startAdmin(t, Config{TokenSecret: testSecret})
	sessionsTest(t, as, as, nil)
}

// TestSessionsAcrossTwoNodes runs the same story with the devices on one
// node of a bus on Redis and the operator on the other.
func TestSessionsAcrossTwoNodes(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := startAdmin(t, Config{TokenSecret: testSecret, Redis: rs.URL()})
	b := startAdmin(t, Config{TokenSecret: testSecret, Redis: rs.URL()})
	sessionsTest(t, a, b, rs)
}

func sessionsTest(t *testing.T, node, operator *adminServer, rs *redistest.Server) {
	now := time.Now()
	alice := mint(t, "alice", nil, []string{"room"}, now, "1h")
	bob := mint(t, "bob", nil, []string{"room"}, now, "1h")
	phone := openDevice(t, node.Addr, "/msgbus/room", alice)
	laptop := openDevice(t, node.Addr, "/msgbus/room", alice)
	bobs := openDevice(t, node.Addr, "/msgbus/room", bob)

	var list []session
	bustest.Until(t, func() string { return "alice's two sessions listed" }, func() bool {
		list = operator.sessionsOf(t, "alice")
		return len(list) == 2
	})
	ids := []string{list[0].ID, list[1].ID}
	if !slices.Contains(ids, phone.session) || !slices.Contains(ids, laptop.session) {
		t.Fatalf("listed %v, want the devices' sessions %s and %s", ids, phone.session, laptop.session)
	}
	if s := list[0]; s.User != "alice" || s.Kind != "multipart" || !slices.Equal(s.Channels, []string{"room", "@alice"}) || s.Remote == "" {
		t.Fatalf("session %+v, want alice's multipart session on room and @alice", s)
	}

	if code, body := operator.call(t, "POST", "/admin/publish/@alice?from=server", "for alice"); code != 204 {
		t.Fatalf("publish to @alice = %d %q", code, body)
	}
	if code, body := operator.call(t, "POST", "/admin/publish/room?from=server", "for everyone"); code != 204 {
		t.Fatalf("publish to room = %d %q", code, body)
	}
	phone.waitFor(t, "From: server\r\nContent-Location: /msgbus/@alice\r\n")
	laptop.waitFor(t, "for alice")
	for _, d := range []device{phone, laptop} {
		d.waitFor(t, "for everyone")
	}
	if before := bobs.waitFor(t, "for everyone"); strings.Contains(before, "for alice") {
		t.Errorf("bob's stream holds alice's message: %q", before)
	}

	if code, body := operator.call(t, "POST", "/admin/sessions/"+phone.session+"/bind/news", ""); code != 204 {
		t.Fatalf("bind = %d %q", code, body)
	}
	bustest.Until(t, func() string { return "the binding listed" }, func() bool {
		for _, s := range operator.sessionsOf(t, "alice") {
			if s.ID == phone.session {
				return slices.Contains(s.Channels, "news")
			}
		}
		return false
	})
	operator.call(t, "POST", "/admin/publish/news/today", "headline")
	phone.waitFor(t, "Content-Location: /msgbus/news/today\r\n")
	operator.call(t, "DELETE", "/admin/sessions/"+phone.session+"/bind/news", "")
	operator.call(t, "POST", "/admin/users/alice/bind/news", "") // the laptop too, now
	bustest.Until(t, func() string { return "the user's binding listed" }, func() bool {
		got := operator.sessionsOf(t, "alice")
		return len(got) == 2 && slices.Contains(got[0].Channels, "news") && slices.Contains(got[1].Channels, "news")
	})
	operator.call(t, "POST", "/admin/publish/news/today", "second")
	laptop.waitFor(t, "second")
	phone.waitFor(t, "second")

	if code, _ := operator.call(t, "DELETE", "/admin/users/alice/sessions/"+phone.session, ""); code != 204 {
		t.Fatalf("log out one device = %d, want 204", code)
	}
	phone.ended(t)
	operator.call(t, "POST", "/admin/publish/room", "still here")
	laptop.waitFor(t, "still here")
	if code, _ := operator.call(t, "DELETE", "/admin/users/alice/sessions/"+phone.session, ""); code != 404 {
		t.Errorf("logging out an ended session = %d, want 404", code)
	}
	if code, _ := operator.call(t, "DELETE", "/admin/users/alice/sessions", ""); code != 204 {
		t.Fatalf("log out everywhere = %d, want 204", code)
	}
	laptop.ended(t)
	operator.call(t, "POST", "/admin/publish/room", "bob stays")
	bobs.waitFor(t, "bob stays")
	if code, _ := operator.call(t, "DELETE", "/admin/users/nobody/sessions", ""); code != 404 {
		t.Errorf("log out a user without sessions = %d, want 404", code)
	}
	if code, _ := operator.call(t, "POST", "/admin/sessions/"+bobs.session+"/bind/a%01b", ""); code != 400 {
		t.Errorf("bind to a bad channel name = %d, want 400", code)
	}
}
