package message

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// An ID names a message and orders it: Ms is when the id was made, in Unix
// milliseconds, and Seq counts the ids made within that millisecond. It is
// written "<ms>-<seq>", the shape of a Redis stream id, so that ids keep
// increasing across restarts without any state, as long as the clock does
// not go back by more than the restart takes (IDGen.Resume covers that
// when a store remembers the last id).
//
// The zero ID is before every real id: "since the zero ID" is everything.
type ID struct{ Ms, Seq uint64 }

// MaxIDBytes is the longest id a client may send (PROTOCOL.md §6).
const MaxIDBytes = 64

// ErrBadID: the id is not one this server could have made.
var ErrBadID = errors.New(`malformed id: want "<ms>-<seq>" as given in Msgbus-Id`)

// Less reports whether id comes before o.
func (id ID) Less(o ID) bool { return id.Ms < o.Ms || (id.Ms == o.Ms && id.Seq < o.Seq) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// String returns "<ms>-<seq>".
func (id ID) String() string { return string(id.Append(make([]byte, 0, 24))) }

// Append appends id's text to b.
func (id ID) Append(b []byte) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// ParseID parses "<ms>-<seq>". A bare "<ms>" is accepted as "<ms>-0".
func ParseID(s string) (ID, error) {
	if s == "" || len(s) > MaxIDBytes {
		return ID{}, ErrBadID
	}
	ms, seq, dash := strings.Cut(s, "-")
	var id ID
	var err error
	if id.Ms, err = strconv.ParseUint(ms, 10, 64); err != nil {
		return ID{}, ErrBadID
	}
	if dash {
		if id.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return ID{}, ErrBadID
		}
	}
	return id, nil
}

// An IDGen makes increasing ids from a clock. It is not safe for concurrent
// use: its caller holds the lock that also fixes the order in which the
// messages reach their subscribers, so that ids and delivery agree.
type IDGen struct{ last ID }

// Next returns an id after every id Next returned or Resume was given:
// now's millisecond, or the last one's with the next Seq when the clock has
// not moved on (or went back).
func (g *IDGen) Next(now time.Time) ID {
	ms := uint64(max(now.UnixMilli(), 0))
	if ms > g.last.Ms {
		g.last = ID{Ms: ms}
	} else {
		g.last.Seq++
	}
	return g.last
}

// Resume makes every later id come after last: a store's newest id, after a
// restart.
func (g *IDGen) Resume(last ID) {
	if g.last.Less(last) {
		g.last = last
	}
}

// Last returns the last id made or resumed from.
func (g *IDGen) Last() ID { return g.last }
