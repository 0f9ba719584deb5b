package msgfmt

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
)

func TestCountSaysOneThingAndManyThings(t *testing.T) {
	tests := []struct {
		n          int
		noun, want string
	}{
		{0, "subscriber", "0 subscribers"},
		{1, "subscriber", "1 subscriber"},
		{2, "subscriber", "2 subscribers"},
		{1, "delivery", "1 delivery"},
		{3, "delivery", "3 deliveries"},
		{2, "publish", "2 publishes"},
		{2, "day", "2 days"},
		{-1, "byte", "-1 bytes"},
	}
	for _, tt := range tests {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}

func TestInferTypeNamesWhatTheContentIs(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"a":1}` + "\n", TypeJSON},
		{`  [1, 2, {"b": null}]`, TypeJSON},
		{`{"a":1`, TypeText}, // not JSON: text
		{`42`, TypeText},     // a bare JSON scalar reads as text too
		{`"quoted"`, TypeText},
		{"hello, wörld\n", TypeText},
		{"", TypeText},
		{"tab\tand\r\nCRLF and \x1b[1mbold\x1b[0m", TypeText},
		{"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"},
		{"GIF89a\x01\x00", "image/gif"},
		{"\xff\xd8\xff\xe0", "image/jpeg"},
		{"%PDF-1.7\n", "application/pdf"},
		{"<!DOCTYPE html><p>hi</p>", "text/html; charset=utf-8"},
		{"<html>\xff\xfe</html>", TypeBinary}, // HTML that is not UTF-8
		{"\x00\x01\x02", TypeBinary},
		{"caf\xe9", TypeBinary},                         // Latin-1, not UTF-8
		{strings.Repeat("a", 600) + "\x00", TypeBinary}, // binary past the sniffer's 512 bytes
		{strings.Repeat("a", 600) + "\xff", TypeBinary},
	}
	for _, tt := range tests {
		if got := InferType([]byte(tt.body)); got != tt.want {
			t.Errorf("InferType(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

func TestHeaderLineSplitsOnSpacesAndDecodes(t *testing.T) {
	tests := []struct {
		m    client.Message
		want string
	}{
		{client.Message{Channel: "news", Type: "text/plain", Sender: "alice", Body: []byte("hi")},
			"channel=news type=text/plain from=alice size=2"},
		{client.Message{Channel: "a b/ü%", Type: "text/plain; charset=utf-8", Body: nil},
			"channel=a%20b/%C3%BC%25 type=text/plain;%20charset=utf-8 from= size=0"},
		{client.Message{Channel: "x", Type: "a=b", Sender: "zoë smith", Body: []byte("12345"), ID: "7"},
			"channel=x type=a=b from=zo%C3%AB%20smith size=5 id=7"},
		{client.Message{Channel: "tab\there", Type: "t", Sender: "line\nbreak"},
			"channel=tab%09here type=t from=line%0Abreak size=0"},
	}
	for _, tt := range tests {
		got := HeaderLine(tt.m)
		if got != tt.want {
			t.Errorf("HeaderLine(%+v) = %q, want %q", tt.m, got, tt.want)
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Split(got, " ") {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				t.Fatalf("field %q of %q has no =", f, got)
			}
			var err error
			if fields[k], err = url.PathUnescape(v); err != nil {
				t.Fatalf("field %q of %q: %v", f, got, err)
			}
		}
		if fields["channel"] != tt.m.Channel || fields["type"] != tt.m.Type || fields["from"] != tt.m.Sender {
			t.Errorf("%q decodes to %q, want the message's own", got, fields)
		}
	}
}

func TestJSONMessageHasTheHistoryShape(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 30, 1, 234567890, time.FixedZone("CET", 3600))
	tests := []struct {
		m    client.Message
		want JSONMessage
	}{
		{client.Message{Channel: "news", Type: "text/plain", Sender: "alice", Body: []byte("héllo")},
			JSONMessage{Channel: "news", Type: "text/plain", From: "alice", Time: "2026-11-28T08:30:01.234Z", Body: "héllo", Encoding: "utf-8"}},
		{client.Message{Channel: "img", Type: "image/png", Body: []byte("\x89PNG"), ID: "12"},
			JSONMessage{ID: "12", Channel: "img", Type: "image/png", Time: "2026-11-28T08:30:01.234Z", Body: "iVBORw==", Encoding: "base64"}},
		{client.Message{Channel: "e", Type: "text/plain"},
			JSONMessage{Channel: "e", Type: "text/plain", Time: "2026-11-28T08:30:01.234Z", Body: "", Encoding: "utf-8"}},
	}
	for _, tt := range tests {
		if got := NewJSONMessage(tt.m, at); got != tt.want {
			t.Errorf("NewJSONMessage(%+v) = %+v, want %+v", tt.m, got, tt.want)
		}
	}
}

func TestForTerminalEscapesControlsAndRefusesBinary(t *testing.T) {
	tests := []struct {
		body, want string
		ok         bool
	}{
		{"plain text\n", "plain text\n", true},
		{"tab\tand CRLF\r\n", "tab\tand CRLF\r\n", true},
		{"\x1b[2J\x1b]0;owned\x07", `\x1b[2J\x1b]0;owned\x07`, true},
		{"over\rwrite", `over\x0dwrite`, true},
		{"c1 \u009b31m", `c1 \u009b31m`, true},
		{"ünïcödé ✓", "ünïcödé ✓", true},
		{"\x89PNG\r\n", "", false},
	}
	for _, tt := range tests {
		got, ok := ForTerminal([]byte(tt.body))
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("ForTerminal(%q) = %q, %v; want %q, %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}
