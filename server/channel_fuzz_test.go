package server

import (
	"github.com/msgbus/msgbus/server/message"
	"testing"
)

func TestParseChannelRefusesEscapedTraversal(t *testing.T) {
	tests := []struct {
		raw       string
		allowRoot bool
		want      string
		wantErr   bool
	}{
		{"news", false, "news", false},
		{"a/b", false, "a/b", false},
		{"a%20b", false, "a b", false},
		{"a%2Fb", false, "a/b", false},
		{"", true, "", false},
		{"", false, "", true},
		{"%2e%2e", false, "", true},
		{"%2E%2E", false, "", true},
		{"a/../b", false, "", true},
		{"a/%2e%2e/b", false, "", true},
		{"a/%2e/b", false, "", true},
		{"..", true, "", true},
		{"a//b", false, "", true},
		{"a%2F%2Fb", false, "", true},
		{"/a", false, "", true},
		{"a/", false, "", true},
		{"%", false, "", true},
		{"%zz", false, "", true},
		{"%00", false, "", true},
		{"%0d%0a", false, "", true},
		{"%c2%85", false, "", true}, // C1 control NEL
		{"%ff", false, "", true},    // invalid UTF-8
	}
	for _, tt := range tests {
		got, err := parseChannel(tt.raw, tt.allowRoot)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseChannel(%q, %v) = %q, %v; want %q, error %v", tt.raw, tt.allowRoot, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzParseChannel: parseChannel never panics, every name it accepts is
// one message.CheckChannel accepts, and only an empty path is the root.
func FuzzParseChannel(f *testing.F) {
	for _, s := range []string{
		"", "news", "a/b/c", "%2e%2e", "%2E%2e", "a/../b", "a/%2e%2e/b", "a%2Fb", "a%2F%2Fb",
		"%", "%zz", "%00", "%7f", "%c2%85", "%ff", "a+b", "%E6%97%A5", "/", "a/", ".",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, allowRoot bool) {
		name, err := parseChannel(raw, allowRoot)
		if err != nil {
			if name != "" {
				t.Fatalf("parseChannel(%q) = %q with error %v", raw, name, err)
			}
			return
		}
		if name == "" {
			if raw != "" || !allowRoot {
				t.Fatalf("parseChannel(%q, %v) accepted the root", raw, allowRoot)
			}
			return
		}
		if err := message.CheckChannel(name); err != nil {
			t.Fatalf("parseChannel(%q) accepted %q, which CheckChannel refuses: %v", raw, name, err)
		}
	})
}
