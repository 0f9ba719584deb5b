package message

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustFilter(t testing.TB, types, senders string) *Filter {
	t.Helper()
	f, err := ParseFilter(types, senders)
	if err != nil {
		t.Fatalf("ParseFilter(%q, %q): %v", types, senders, err)
	}
	return f
}

func TestParseFilterIsNilWhenNothingIsFiltered(t *testing.T) {
	tests := []struct {
		types, senders string
		wantNil        bool
	}{
		{"", "", true},
		{"*", "", true},
		{"", "*", true},
		{"*", "*", true},
		{"*,*", " * ", true},
		{"text/*", "", false},
		{"", "alice", false},
		{",", "", false}, // a list of no patterns matches nothing
	}
	for _, tt := range tests {
		if got := mustFilter(t, tt.types, tt.senders); (got == nil) != tt.wantNil {
			t.Errorf("ParseFilter(%q, %q) = %v, want nil: %v", tt.types, tt.senders, got, tt.wantNil)
		}
		if got := NewFilter(tt.types, tt.senders); (got == nil) != tt.wantNil {
			t.Errorf("NewFilter(%q, %q) = %v, want nil: %v", tt.types, tt.senders, got, tt.wantNil)
		}
	}
}

func TestParseFilterRefusesOversizedListsWithAReasonForTheClient(t *testing.T) {
	many := strings.TrimSuffix(strings.Repeat("*?x,", 1900), ",")
	long := strings.Repeat("a", MaxPatternBytes+1)
	tests := []struct {
		types, senders string
		want           string
		err            error
	}{
		{many, "", "?type= has more than 32 patterns", ErrTooManyPatterns},
		{"", many, "?sender= has more than 32 patterns", ErrTooManyPatterns},
		{"text/*," + long, "", "?type= has a pattern longer than 128 bytes", ErrPatternTooLong},
		{"", "!" + long, "?sender= has a pattern longer than 128 bytes", ErrPatternTooLong},
		{many, long, "?type= has more than 32 patterns", ErrTooManyPatterns},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.types, tt.senders)
		var fe *FilterError
		if f != nil || !errors.As(err, &fe) || !errors.Is(err, tt.err) || err.Error() != tt.want {
			t.Errorf("ParseFilter(%.20q…, %.20q…) = %v, %v; want nil, %q", tt.types, tt.senders, f, err, tt.want)
		}
		// NewFilter, which cannot say no, passes nothing.
		if nf := NewFilter(tt.types, tt.senders); nf == nil || nf.Match(&Message{Type: "x/y"}) {
			t.Errorf("NewFilter(%.20q…, %.20q…) lets a message through", tt.types, tt.senders)
		}
	}
}

func TestFilterMatchesTypeAndSender(t *testing.T) {
	f := mustFilter(t, "text/*", "alice,bob")
	tests := []struct {
		typ, sender string
		want        bool
	}{
		{"text/plain", "alice", true},
		{"TEXT/PLAIN", "bob", true},
		{"text/plain", "Alice", false}, // senders are case-sensitive
		{"text/plain", "", false},
		{"image/png", "alice", false},
	}
	for _, tt := range tests {
		m := &Message{Type: tt.typ, Sender: tt.sender}
		if got := f.Match(m); got != tt.want {
			t.Errorf("Match(type %q, sender %q) = %v, want %v", tt.typ, tt.sender, got, tt.want)
		}
	}
	var none *Filter
	if !none.Match(&Message{Type: "x"}) {
		t.Fatal("a nil *Filter must pass everything")
	}
}

// TestTypeFilterMatchesTheMediaTypeAsPROTOCOLSays: PROTOCOL §2's examples.
func TestTypeFilterMatchesTheMediaTypeAsPROTOCOLSays(t *testing.T) {
	tests := []struct {
		types, contentType string
		want               bool
	}{
		{"text/plain", "text/plain; charset=utf-8", true},
		{"text/*", "text/plain; charset=utf-8", true},
		{"application/json", "application/json; charset=utf-8", true},
		{"application/json", "APPLICATION/JSON;CHARSET=UTF-8", true},
		{"text/plain;*", "text/plain; charset=utf-8", true},
		{"*;*charset=utf-8", "Text/Plain; Charset=UTF-8", true},
		{"*;*charset=utf-8", "text/plain", false},
		{"text/plain; charset=utf-8", "text/plain; charset=utf-8; format=flowed", false},
		{"!image/*", "text/plain", false},
		{"!image/*,*", "image/png; x=y", false},
		{"!image/*,*", "text/plain", true},
	}
	for _, tt := range tests {
		f := mustFilter(t, tt.types, "")
		if got := f.Match(&Message{Type: tt.contentType}); got != tt.want {
			t.Errorf("?type=%s, Content-Type %q: %v, want %v", tt.types, tt.contentType, got, tt.want)
		}
	}
	// Senders: the whole user name, case-sensitively, even with ';'.
	f := mustFilter(t, "", "a;b,Carol")
	for sender, want := range map[string]bool{"a;b": true, "a": false, "Carol": true, "carol": false} {
		if got := f.Match(&Message{Type: "x/y", Sender: sender}); got != want {
			t.Errorf("?sender=a;b,Carol, sender %q: %v, want %v", sender, got, want)
		}
	}
}

func TestParseFilterInternsEqualLists(t *testing.T) {
	a := mustFilter(t, "text/*, !text/html,image/png", "bob,alice")
	same := []struct{ types, senders string }{
		{"Image/PNG,text/*,!TEXT/HTML", "alice,bob"},
		{"!text/html,,text/*,image/png,image/png", " alice , bob "},
	}
	for _, s := range same {
		if b := mustFilter(t, s.types, s.senders); b != a {
			t.Errorf("ParseFilter(%q, %q) is not the filter of the same lists", s.types, s.senders)
		}
	}
	different := []struct{ types, senders string }{
		{"text/*,image/png", "alice,bob"},
		{"text/*,!text/html,image/png", "Alice,bob"},
		{"", "text/*,!text/html,image/png"},
		{"text/*,!text/html,image/png", ""},
	}
	for _, d := range different {
		if b := mustFilter(t, d.types, d.senders); b == a {
			t.Errorf("ParseFilter(%q, %q) is the filter of other lists", d.types, d.senders)
		}
	}
}

// TestUnusedFiltersAreFreed: the intern table follows the live filters.
func TestUnusedFiltersAreFreed(t *testing.T) {
	const n = 1000
	fs := make([]*Filter, n)
	for i := range fs {
		fs[i] = mustFilter(t, "freed/"+strconv.Itoa(i), "")
	}
	if got := internedWithPrefix("freed/"); got != n {
		t.Fatalf("%d filters interned after making %d, want %d", got, n, n)
	}
	kept := fs[7]
	fs = nil
	deadline := time.Now().Add(10 * time.Second)
	for internedWithPrefix("freed/") > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d filters still interned, want 1", internedWithPrefix("freed/"))
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if again := mustFilter(t, "freed/7", ""); again != kept {
		t.Fatal("a filter still in use was not reused")
	}
	runtime.KeepAlive(kept)
}

// internedWithPrefix counts the interned filters whose type list starts
// with prefix.
func internedWithPrefix(prefix string) int {
	interned.Lock()
	defer interned.Unlock()
	n := 0
	for k := range interned.m {
		if strings.HasPrefix(k.types, prefix) {
			n++
		}
	}
	return n
}

// TestFilterMemoNeverGivesAnotherMessagesResult: goroutines match their
// own messages through one shared filter, as publishes on several channels
// (or several hubs, whose message IDs overlap) do; every answer must be the
// message's own, whatever the memo holds.
func TestFilterMemoNeverGivesAnotherMessagesResult(t *testing.T) {
	f := mustFilter(t, "text/*", "")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				want := (g+i)%2 == 0
				typ := "image/png"
				if want {
					typ = "text/plain"
				}
				m := &Message{ID: ID{Seq: uint64(i + 1)}, Type: typ} // the same IDs in every goroutine
				for range 3 {
					if got := f.Match(m); got != want {
						t.Errorf("Match(%s) = %v, want %v", typ, got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestFilterMatchAllocatesNothing(t *testing.T) {
	f := mustFilter(t, strings.Repeat("*?x", 42)+"*,text/*", "!mallory,*")
	m := &Message{Type: "Text/Plain; charset=UTF-8", Sender: "alice"}
	f.Match(m) // folds the type: one allocation per message
	other := mustFilter(t, "*/plain", "")
	if allocs := testing.AllocsPerRun(100, func() {
		f.Match(m)
		other.Match(m)
	}); allocs != 0 {
		t.Fatalf("Match allocates %v times per call, want 0", allocs)
	}
}

// FuzzParseFilter compares a parsed filter with the reference lists, on
// type and sender at once.
func FuzzParseFilter(f *testing.F) {
	f.Add("text/plain", "alice", "text/plain; charset=utf-8", "alice")
	f.Add("!image/*,*", "!bob,*", "image/png", "")
	f.Add("*;*utf-8", "a;b", "Text/Plain; Charset=UTF-8", "a;b")
	f.Add("application/json", "*", " Application/Json ; q=1", "x")
	f.Add(strings.Repeat("*?x", 42)+"*", "", strings.Repeat("ax", 50), "")
	f.Fuzz(func(t *testing.T, types, senders, typ, sender string) {
		if len(types)+len(senders) > 512 || len(typ)+len(sender) > 1024 {
			t.Skip()
		}
		flt, err := ParseFilter(types, senders)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("ParseFilter: %v is not a one-line *FilterError", err)
			}
			t.Skip()
		}
		m := &Message{Type: typ, Sender: sender}
		want := refMatchList(types, typ, true, true) && refMatchList(senders, sender, false, false)
		if got := flt.Match(m); got != want {
			t.Fatalf("ParseFilter(%q, %q).Match(type %q, sender %q) = %v, reference says %v",
				types, senders, typ, sender, got, want)
		}
		if got := flt.Match(m); got != want {
			t.Fatalf("second Match (memoized) = %v, want %v", got, want)
		}
	})
}
