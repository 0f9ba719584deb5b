package redis

import (
	"strconv"
	"testing"
)

// The feed's and the push list's parsers take what Redis holds, which any
// client of that Redis could have written: they must refuse what is not
// theirs without panicking, and read back what the scripts write.
func FuzzParseFeed(f *testing.F) {
	f.Add("m 1796398707260-0 7 node/1\na/b\ntext/plain\nalice\nhello")
	f.Add("b 1-2 0 -\nc\n\n\n")
	f.Add("w 5-0 0 -\njobs\n\n\n")
	f.Add("m x 1 -\na\nb\nc\nd")
	f.Add("")
	f.Add("m 1-0 18446744073709551616 -\na\n\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := parseFeed(s)
		if err != nil {
			return
		}
		// What the script would write for it parses back the same.
		again := string([]byte{fm.kind}) + " " + fm.m.ID.String() + " " + strconv.FormatUint(fm.n, 10) + " " + fm.origin + "\n" +
			fm.m.Channel + "\n" + fm.m.Type + "\n" + fm.m.Sender + "\n" + string(fm.m.Body)
		fm2, err := parseFeed(again)
		if err != nil || fm2.kind != fm.kind || fm2.n != fm.n || fm2.origin != fm.origin || fm2.m.ID != fm.m.ID ||
			fm2.m.Channel != fm.m.Channel || fm2.m.Type != fm.m.Type || fm2.m.Sender != fm.m.Sender || string(fm2.m.Body) != string(fm.m.Body) {
			t.Fatalf("%q parsed as %+v, written back as %q, parsed again as %+v, %v", s, fm, again, fm2, err)
		}
	})
}

func FuzzParseItem(f *testing.F) {
	f.Add("1796398707260-3\ntext/plain\n\nbody\nwith lines")
	f.Add("1-0\n\n\n")
	f.Add("nope")
	f.Fuzz(func(t *testing.T, item string) {
		m, ok := parseItem("t", item)
		if !ok {
			return
		}
		again := m.ID.String() + "\n" + m.Type + "\n" + m.Sender + "\n" + string(m.Body)
		m2, ok := parseItem("t", again)
		if !ok || m2.ID != m.ID || m2.Type != m.Type || m2.Sender != m.Sender || string(m2.Body) != string(m.Body) {
			t.Fatalf("%q read as %+v, written back as %q, read again as %+v", item, m, again, m2)
		}
	})
}
