// Package history keeps recent messages of every channel so that a client
// that reconnects gets what it missed (PROTOCOL.md §6): a Store interface,
// the memory store every other store builds on, and Log, the durable one.
//
// A store is written by its engine under the hub's order lock, in id
// order, and read by many goroutines at once.
package history

import (
	"errors"
	"time"

	"github.com/msgbus/msgbus/server/message"
)

// Defaults of the limits (PROTOCOL.md §6).
const (
	DefaultSize     = 100
	DefaultTTL      = time.Hour
	DefaultMaxBytes = 64 << 20
	// MaxPage is the most messages one Page returns.
	MaxPage = 1000
)

// Limits bound what a store keeps. Size 0 turns history off.
type Limits struct {
	Size     int           // messages per channel (exactly that channel)
	TTL      time.Duration // the oldest a message may be
	MaxBytes int64         // all messages together (message.Size)
}

// DefaultLimits returns the limits of PROTOCOL.md §6.
func DefaultLimits() Limits {
	return Limits{Size: DefaultSize, TTL: DefaultTTL, MaxBytes: DefaultMaxBytes}
}

// ErrUnavailable wraps a store's failure to keep a message (a full disk, a
// closed database): the publish is refused and may be retried.
var ErrUnavailable = errors.New("history store unavailable")

// A Store keeps messages by channel, with the channel hierarchy: a query
// on "a" sees the messages of "a" and of every channel below it, the root
// ("") sees all.
type Store interface {
	// Append keeps m, whose ID comes after every ID appended before. It
	// is called under the hub's order lock, so it must not wait for a
	// disk; an error refuses the publish.
	Append(m *message.Message) error
	// Sync waits until m, appended before, is as safe as the store makes
	// it (on disk for a durable store). Concurrent calls share one commit.
	Sync(m *message.Message) error
	// Replay returns the retained messages of channel and below that pass
	// f (nil passes all), oldest first: those after q.After, or the newest
	// q.Last, at most q.Max. Recovered is false when some message after
	// q.After may be missing (see Replay).
	Replay(channel string, f *message.Filter, q ReplayQuery) Replay
	// Page returns one page of the retained messages of channel and below
	// that pass f, oldest first.
	Page(channel string, f *message.Filter, q PageQuery) Page
	// Recent returns the retained messages with an idempotency key
	// accepted at or after since, oldest first: an engine's memory of
	// keys after a restart.
	Recent(since time.Time) []*message.Message
	// LastID returns the newest id the store holds or held: ids go on
	// after it after a restart.
	LastID() message.ID
	// Stats returns the store's size.
	Stats() Stats
	// Err returns why the store cannot take messages, nil while it can.
	Err() error
	Close() error
}

// A ReplayQuery says what a resuming subscriber wants: the messages after
// an id (After, with Since set), or the newest Last; at most Max.
type ReplayQuery struct {
	After message.ID
	Since bool // After is set: replay what follows it
	Last  int  // without Since: the newest Last messages
	Max   int  // the most to replay (--resume-max); 0 means no limit
}

// A Replay is what a resume gets.
type Replay struct {
	Messages []*message.Message
	// Recovered: every message after the id was still retained and is in
	// Messages. False when the id is older than the history, unknown, or
	// from before a memory store restarted, or when Max cut the replay.
	Recovered bool
}

// A PageQuery pages through history: the messages before an id, after an
// id, or (neither) the newest; at most Limit.
type PageQuery struct {
	Before, After       message.ID
	HasBefore, HasAfter bool
	Limit               int
}

// A Page is one page of history, oldest first; More says there are more
// beyond it in the paging direction (older for Before and the newest,
// newer for After).
type Page struct {
	Messages []*message.Message
	More     bool
}

// Stats are a store's figures.
type Stats struct {
	Messages int   // retained
	Bytes    int64 // their message.Size
	Channels int   // channels with a retained message, with their ancestors
}
