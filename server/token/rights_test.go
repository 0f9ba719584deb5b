package token

import (
	"strings"
	"testing"

	"github.com/msgbus/msgbus/server/message"
)

func TestRightsMatchChannels(t *testing.T) {
	tests := []struct {
		list []string
		yes  []string // channels granted
		no   []string // channels not
	}{
		{nil, nil, []string{"", "a", "chat/a"}},
		{[]string{}, nil, []string{"", "a"}},
		{[]string{"*"}, []string{"", "a", "a/b/c", "@alice"}, nil},
		{[]string{"*", "*"}, []string{"", "a"}, nil},
		{[]string{"?*"}, []string{"a", "a/b"}, []string{""}},
		{[]string{"chat/*"}, []string{"chat/a", "chat/a/b", "chat/"}, []string{"", "chat", "Chat/a", "xchat/a", "a/chat/b"}},
		{[]string{"chat", "chat/*"}, []string{"chat", "chat/a"}, []string{"", "chatter"}},
		{[]string{"!chat/secret", "chat/*"}, []string{"chat/a", "chat/secret/x", "chat/secrets"}, []string{"chat/secret", "chat", ""}},
		{[]string{"!chat/secret", "!chat/secret/*", "chat/*"}, []string{"chat/a", "chat/secrets"}, []string{"chat/secret", "chat/secret/x"}},
		{[]string{"!chat/*"}, nil, []string{"chat/a", "a", ""}},
		{[]string{"@alice"}, []string{"@alice"}, []string{"@alice/x", "@alicia", "@Alice", "alice", ""}},
		{[]string{"news/??"}, []string{"news/uk", "news/é"}, []string{"news/u", "news/usa"}},
		{[]string{"!@*", "*"}, []string{"", "a", "a/@b"}, []string{"@alice"}},
		{[]string{"!*", "a"}, nil, []string{"a"}},
	}
	for _, tt := range tests {
		for _, kind := range []string{"publish", "subscribe"} {
			var r Rights
			var err error
			can := Rights.CanPublish
			other := Rights.CanSubscribe
			if kind == "publish" {
				r, err = ParseRights(tt.list, nil)
			} else {
				r, err = ParseRights(nil, tt.list)
				can, other = other, can
			}
			if err != nil {
				t.Fatalf("%s %q: %v", kind, tt.list, err)
			}
			for _, ch := range tt.yes {
				if !can(r, ch) {
					t.Errorf("%s %q: %q not granted", kind, tt.list, ch)
				}
			}
			for _, ch := range tt.no {
				if can(r, ch) {
					t.Errorf("%s %q: %q granted", kind, tt.list, ch)
				}
			}
			for _, ch := range append(tt.yes, tt.no...) {
				if other(r, ch) {
					t.Errorf("%s %q: %q granted by the other list", kind, tt.list, ch)
				}
			}
			if zero := len(tt.yes) == 0; r.IsZero() != zero {
				t.Errorf("%s %q: IsZero %v, want %v", kind, tt.list, r.IsZero(), zero)
			}
		}
	}
}

func TestZeroRightsGrantNothing(t *testing.T) {
	var r Rights
	if !r.IsZero() || r.CanPublish("") || r.CanSubscribe("") || r.CanPublish("a") || r.CanSubscribe("a") {
		t.Fatal("the zero Rights grant something")
	}
}

func TestParseRightsErrorsSayWhich(t *testing.T) {
	many := make([]string, message.MaxPatterns+1)
	for i := range many {
		many[i] = "a"
	}
	tests := []struct {
		publish, subscribe []string
		want               string
	}{
		{[]string{"a", ""}, nil, `publish entry 2 "": is empty`},
		{nil, []string{"!"}, `subscribe entry 1 "!": is empty`},
		{[]string{"a,b"}, nil, `publish entry 1 "a,b": contains ','`},
		{nil, []string{"!a,b"}, `subscribe entry 1 "!a,b": contains ','`},
		{[]string{" a"}, nil, "starts or ends with a space"},
		{[]string{"! a"}, nil, "starts or ends with a space"},
		{[]string{"a\t"}, nil, "starts or ends with a space"},
		{[]string{strings.Repeat("x", message.MaxPatternBytes+1)}, nil, "publish entry 1 \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…\": is longer than 128 bytes"},
		{nil, many, "subscribe list has 33 entries; at most 32"},
	}
	for _, tt := range tests {
		r, err := ParseRights(tt.publish, tt.subscribe)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRights(%q, %q): %v; want an error containing %q", tt.publish, tt.subscribe, err, tt.want)
		}
		if !r.IsZero() {
			t.Errorf("ParseRights(%q, %q) failed with rights", tt.publish, tt.subscribe)
		}
	}
	// The limits are those of message, '!' not counted.
	ok := []string{"!" + strings.Repeat("x", message.MaxPatternBytes), "a b", "*"}
	if _, err := ParseRights(many[1:], ok); err != nil {
		t.Fatalf("lists at the limits: %v", err)
	}
}
