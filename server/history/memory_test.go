package history

import (
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/message"
)

// memAppend appends messages with ids 1, 2, … on the given channels.
func memAppend(t *testing.T, s *Memory, now time.Time, channels ...string) []*message.Message {
	t.Helper()
	var ms []*message.Message
	for _, ch := range channels {
		m := &message.Message{ID: message.ID{Ms: uint64(s.LastID().Ms + 1)}, Channel: ch, Body: []byte("x"), Time: now}
		if err := s.Append(m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// The durable store deletes from disk exactly what the memory evicts:
// each message once, whichever limit evicts it.
func TestMemoryOnEvictReportsEachEvictionOnce(t *testing.T) {
	now := time.Now()
	clock := now
	// Each message costs 162 (message.Size): four fit.
	s := NewMemory(Limits{Size: 2, TTL: time.Minute, MaxBytes: 4 * 162}, func() time.Time { return clock })
	var evicted []message.ID
	s.OnEvict(func(m *message.Message) { evicted = append(evicted, m.ID) })

	ms := memAppend(t, s, now, "a", "a", "a") // Size: the first "a" goes
	if len(evicted) != 1 || evicted[0] != ms[0].ID {
		t.Fatalf("after Size: evicted %v, want [%v]", evicted, ms[0].ID)
	}
	ms = append(ms, memAppend(t, s, now, "b", "c", "d")...) // MaxBytes: 4 fit
	if len(evicted) != 2 || evicted[1] != ms[1].ID {
		t.Fatalf("after MaxBytes: evicted %v", evicted)
	}
	clock = now.Add(2 * time.Minute)
	s.Expire() // TTL: all the rest
	if len(evicted) != len(ms) {
		t.Fatalf("after TTL: evicted %d of %d: %v", len(evicted), len(ms), evicted)
	}
	seen := make(map[message.ID]bool)
	for i, id := range evicted {
		if seen[id] {
			t.Fatalf("%v evicted twice", id)
		}
		seen[id] = true
		if i > 0 && !evicted[i-1].Less(id) {
			t.Errorf("evictions out of order: %v", evicted)
		}
	}
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 || st.Channels != 0 {
		t.Errorf("stats after all evicted: %+v", st)
	}
}

func TestMemoryMessageLargerThanMaxBytesIsEvictedAtOnce(t *testing.T) {
	s := NewMemory(Limits{Size: 10, MaxBytes: 1000}, nil)
	var evicted int
	s.OnEvict(func(*message.Message) { evicted++ })
	m := &message.Message{ID: message.ID{Ms: 1}, Channel: "a", Body: []byte(strings.Repeat("x", 2000)), Time: time.Now()}
	s.Append(m)
	if evicted != 1 || s.Stats().Messages != 0 {
		t.Fatalf("evicted %d, retained %d", evicted, s.Stats().Messages)
	}
	if s.LastID() != m.ID {
		t.Errorf("LastID %v, want %v: ids go on even for what is not kept", s.LastID(), m.ID)
	}
}

func TestMemoryResumeBeforeFloorIsNotRecovered(t *testing.T) {
	s := NewMemory(DefaultLimits(), nil)
	s.SetFloor(message.ID{Ms: 10})
	memAppend(t, s, time.Now(), "a", "a") // ids 1, 2: loaded after a restart
	for _, c := range []struct {
		after message.ID
		want  bool
	}{
		{message.ID{Ms: 5}, false}, // before the floor: lost messages
		{message.ID{Ms: 10}, true}, // the floor itself: nothing after it lost
	} {
		s.noteLast(message.ID{Ms: 20})
		if r := s.Replay("a", nil, ReplayQuery{Since: true, After: c.after}); r.Recovered != c.want {
			t.Errorf("resume after %v: recovered %v, want %v", c.after, r.Recovered, c.want)
		}
	}
}

func TestMemoryNoteLastOnlyMovesForward(t *testing.T) {
	s := NewMemory(DefaultLimits(), nil)
	s.noteLast(message.ID{Ms: 7, Seq: 1})
	s.noteLast(message.ID{Ms: 7})
	if got := s.LastID(); got != (message.ID{Ms: 7, Seq: 1}) {
		t.Fatalf("LastID = %v", got)
	}
}
