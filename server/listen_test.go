package server

import (
	"strings"
	"testing"
)

func TestListenAddressAcceptsTheOriginalFormsAndRefusesOthers(t *testing.T) {
	cases := []struct {
		spec    string
		port    int
		want    string // "" when an error is wanted
		mention string // the error must contain this
	}{
		{"", 8888, ":8888", ""},
		{"127.0.0.1", 8888, "127.0.0.1:8888", ""},
		{"127.0.0.1:9000", 8888, "127.0.0.1:9000", ""},
		{"http://*:4000", 8888, ":4000", ""},
		{"http://*:4000/", 8888, ":4000", ""},
		{"HTTPS://127.0.0.1:443", 8888, "127.0.0.1:443", ""},
		{"http://127.0.0.1", 7000, "127.0.0.1:7000", ""},
		{"*", 8888, ":8888", ""},
		{"*:5000", 8888, ":5000", ""},
		{"[::1]:80", 8888, "[::1]:80", ""},
		{"::1", 8888, "[::1]:8888", ""},
		{"localhost", 0, "localhost:0", ""},
		{"ftp://x", 8888, "", "-l"},
		{"a:b:c", 8888, "", "-l"},
		{"127.0.0.1:http", 8888, "", "-l"},
		{"127.0.0.1:70000", 8888, "", "-l"},
		{"http://x/path", 8888, "", "-l"},
		{"", 70000, "", "-p"},
		{"", -1, "", "-p"},
	}
	for _, tc := range cases {
		t.Run(tc.spec+"/"+itoa(tc.port), func(t *testing.T) {
			got, err := ListenAddress(tc.spec, tc.port)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ListenAddress(%q, %d) = %q, want an error", tc.spec, tc.port, got)
				}
				if !strings.Contains(err.Error(), tc.mention) {
					t.Errorf("error %q does not name the flag %s", err, tc.mention)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ListenAddress(%q, %d) = %q, %v; want %q", tc.spec, tc.port, got, err, tc.want)
			}
		})
	}
}
