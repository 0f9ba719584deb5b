package message

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"weak"
)

// A Filter selects the messages a subscriber receives, by media type and by
// sender (PROTOCOL §2). A nil *Filter passes everything.
//
// Filters are interned: ParseFilter gives the same *Filter for lists that
// differ only in case (types), order, spacing or repetition, for as long as
// some subscriber holds it. A Filter remembers its last results, keyed by
// message, so a publish evaluates each distinct filter once, however many
// subscribers share it.
type Filter struct {
	types   PatternList // ?type=; folded, media type or whole Content-Type
	senders PatternList // ?sender=; the publisher's user name, anonymous is ""
	key     filterKey

	// memo holds recent results: filterView.key<<1 | passed, in slot
	// key%memoSlots. Publishes on other channels may overwrite a slot at
	// any time; a reader trusts it only when the key is its message's, so
	// a race costs a recomputation, never a wrong answer. Several slots
	// keep concurrent publishes from evicting each other's result.
	memo [memoSlots]atomic.Uint64
}

const memoSlots = 4

// filterKey is a filter's canonical form (PatternList.String of each list).
type filterKey struct{ types, senders string }

// A FilterError is why ParseFilter refused a list. Its message names the
// query parameter and the limit, fit for a one-line 400 reason:
// "?type= has more than 32 patterns".
type FilterError struct {
	Param string // "type" or "sender"
	Err   error  // ErrTooManyPatterns or ErrPatternTooLong
}

func (e *FilterError) Error() string {
	switch e.Err {
	case ErrTooManyPatterns:
		return "?" + e.Param + "= has more than " + strconv.Itoa(MaxPatterns) + " patterns"
	case ErrPatternTooLong:
		return "?" + e.Param + "= has a pattern longer than " + strconv.Itoa(MaxPatternBytes) + " bytes"
	}
	return "?" + e.Param + "=: " + e.Err.Error()
}

func (e *FilterError) Unwrap() error { return e.Err }

// ParseFilter compiles the ?type= and ?sender= pattern lists. It returns a
// nil *Filter when neither filters anything (each absent or "*"), so the
// fan-out skips the check, and a *FilterError when a list holds more than
// MaxPatterns patterns or a pattern longer than MaxPatternBytes.
//
// A type pattern is matched case-insensitively: one without ';' against
// the media type alone (parameters dropped, spaces trimmed), so "text/plain"
// and "text/*" match "text/plain; charset=utf-8"; one with ';' against the
// whole Content-Type. A sender pattern is matched, case-sensitively, against
// the whole user name.
func ParseFilter(types, senders string) (*Filter, error) {
	t, err := parseTypeList(types)
	if err != nil {
		return nil, &FilterError{Param: "type", Err: err}
	}
	s, err := ParsePatternList(senders, false)
	if err != nil {
		return nil, &FilterError{Param: "sender", Err: err}
	}
	if t.MatchesAll() && s.MatchesAll() {
		return nil, nil
	}
	return intern(&Filter{types: t, senders: s, key: filterKey{t.String(), s.String()}}), nil
}

// NewFilter is ParseFilter for callers that cannot report an error: a list
// that ParseFilter refuses gives a filter that passes nothing.
//
// Deprecated: use ParseFilter and answer 400 with its error.
func NewFilter(types, senders string) *Filter {
	f, err := ParseFilter(types, senders)
	if err != nil {
		f, _ = ParseFilter(",", "") // a list of no patterns matches nothing
	}
	return f
}

// Match reports whether m passes f. It may be called from any goroutine.
func (f *Filter) Match(m *Message) bool {
	if f == nil {
		return true
	}
	v := m.filterView()
	slot := &f.memo[v.key%memoSlots]
	if r := slot.Load(); r>>1 == v.key {
		return r&1 != 0
	}
	ok := f.types.match(v.typ, v.media, v.end) && f.senders.match(m.Sender, 0, len(m.Sender))
	r := v.key << 1
	if ok {
		r |= 1
	}
	slot.Store(r)
	return ok
}

// interned maps canonical forms to live filters. An entry goes when its
// filter is collected, so memory follows the subscribers' filters.
var interned = struct {
	sync.Mutex
	m map[filterKey]weak.Pointer[Filter]
}{m: make(map[filterKey]weak.Pointer[Filter])}

// intern returns the live filter with f's key, or f, now interned.
func intern(f *Filter) *Filter {
	interned.Lock()
	defer interned.Unlock()
	if old := interned.m[f.key].Value(); old != nil {
		return old
	}
	wp := weak.Make(f)
	interned.m[f.key] = wp
	runtime.AddCleanup(f, forget, internedEntry{f.key, wp})
	return f
}

type internedEntry struct {
	key filterKey
	wp  weak.Pointer[Filter]
}

// forget drops a collected filter's entry, unless a new filter with the
// same key has taken its place.
func forget(e internedEntry) {
	interned.Lock()
	if interned.m[e.key] == e.wp {
		delete(interned.m, e.key)
	}
	interned.Unlock()
}
