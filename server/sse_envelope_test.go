package server

// Tests of the SSE envelope (?envelope=json, PROTOCOL.md §3 and §6): every
// event's data is the message as one JSON object, byte for byte, for
// parents and the root too.

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sseEnvelopeTime finds the time field in an envelope stream; the test
// checks each and puts sseAnyTime, as long, in its place.
var sseEnvelopeTime = regexp.MustCompile(`"time":"([^"]*)"`)

const sseAnyTime = "YYYY-MM-DDThh:mm:ss.sssZ"

func TestSSEEnvelopeSaysChannelTypeSenderAndTime(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00"
	cases := []struct {
		name, typ, body string
		want            string // the envelope's "body" and "encoding"
	}{
		{"text", "text/plain; charset=utf-8", "hi\r\nthere \"you\" \\ \x01",
			`"body":"hi\r\nthere \"you\" \\ \u0001","encoding":"utf-8"`},
		{"JSON stays a string", "application/json", `{"a":1}`, `"body":"{\"a\":1}","encoding":"utf-8"`},
		{"empty", "text/plain", "", `"body":"","encoding":"utf-8"`},
		{"binary", "image/png", png,
			`"body":"` + base64.StdEncoding.EncodeToString([]byte(png)) + `","encoding":"base64"`},
	}
	for _, who := range []struct {
		name, secret, auth, from string
	}{
		{"anonymous", "", "", ""},
		{"with sender", "s3cret", protoBasic("alice", "s3cret"), `"from":"alice",`},
	} {
		t.Run(who.name, func(t *testing.T) {
			protoEachFraming(t, func(t *testing.T, f protoFraming) {
				ts := startServer(t, Config{Secret: who.secret})
				subs := map[string]*rawConn{
					"a/b":  sseSubscribe(t, ts, "/msgbus/a/b?envelope=json", f.http11, who.auth),
					"a":    sseSubscribe(t, ts, "/msgbus/a?envelope=json", f.http11, who.auth),
					"root": sseSubscribe(t, ts, "/msgbus/?envelope=json", f.http11, who.auth),
				}
				ts.waitSubscribers(t, int64(len(subs)))
				var want strings.Builder
				before := time.Now()
				for _, c := range cases {
					r := protoPublish(t, ts, "/msgbus/a/b", who.auth+"Content-Type: "+c.typ+"\r\n", c.body)
					id := r.header.Get("Msgbus-Id")
					want.WriteString(sseFrame(f, "id: "+id+"\ndata: "+`{"id":"`+id+`","channel":"a/b","type":"`+
						strings.ReplaceAll(c.typ, `"`, `\"`)+`",`+who.from+`"time":"`+sseAnyTime+`",`+c.want+"}\n\n"))
				}
				after := time.Now()
				ts.stop(t)
				for name, c := range subs {
					got := c.readAll()
					for _, m := range sseEnvelopeTime.FindAllStringSubmatch(got, -1) {
						when, err := time.Parse(time.RFC3339, m[1])
						if err != nil || !sseTimeShape.MatchString(m[1]) ||
							when.Before(before.Truncate(time.Millisecond)) || when.After(after) {
							t.Errorf("subscriber of %s: time %q (%v), want UTC with ms between %v and %v",
								name, m[1], err, before, after)
						}
					}
					got = sseEnvelopeTime.ReplaceAllString(got, `"time":"`+sseAnyTime+`"`)
					if w := want.String() + sseEnd(f); got != w {
						t.Errorf("subscriber of %s:\n got %q\nwant %q", name, got, w)
					}
				}
			})
		})
	}
}

func TestSSEEnvelopeOnlyForJSON(t *testing.T) {
	ts := startServer(t, Config{})
	other := sseSubscribe(t, ts, "/msgbus/q?envelope=xml", true, "")
	both := sseSubscribe(t, ts, "/msgbus/q?type=text/*&envelope=json", true, "")
	ts.waitSubscribers(t, 2)
	protoPublish(t, ts, "/msgbus/q", "Content-Type: image/gif\r\n", "GIF89a")
	r := protoPublish(t, ts, "/msgbus/q", "Content-Type: text/plain\r\n", "t")
	ts.stop(t)
	events := sseParse(t, sseUnchunk(t, other.readAll()))
	if len(events) != 2 || events[1].data != "t" {
		t.Errorf("?envelope=xml: events %q, want the two bodies as they are", events)
	}
	events = sseParse(t, sseUnchunk(t, both.readAll()))
	if len(events) != 1 || !strings.HasPrefix(events[0].data, `{"id":"`+r.header.Get("Msgbus-Id")+`","channel":"q",`) {
		t.Errorf("?type=text/*&envelope=json: events %q, want the text message's envelope alone", events)
	}
}
