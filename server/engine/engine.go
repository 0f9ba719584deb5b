// Package engine is the seam between the HTTP front end and what orders,
// keeps and delivers messages: in the spirit of centrifuge's Broker and
// mercure's Transport, one interface that the in-process engine (package
// engine/local) implements now and a Redis engine, serving several nodes
// as one bus, implements next. Every engine passes the conformance suite
// in package engine/enginetest.
//
// An engine owns the messages given to it: their bodies must not be
// buffers the caller reuses (copy a request's body before Publish).
package engine

import (
	"errors"

	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// An Engine orders, keeps and delivers messages. Its local subscribers are
// hub subscriptions: the engine decides what reaches them and in which
// order; the hub queues the frames and the server writes them.
type Engine interface {
	// Publish gives m an id and a time, keeps it in history and delivers
	// it to every matching subscriber (m.Channel, its ancestors, the
	// root). It returns once m is as safe as the engine makes it (on disk
	// with a durable store). A repeated idempotency key (m.Key) on the
	// same channel within KeyTTL is answered with the first message's id
	// and Duplicate, and not published again.
	Publish(m *message.Message) (Published, error)
	// PublishExact delivers m to the subscribers of exactly m.Channel but
	// except (the peer bus), without history.
	PublishExact(m *message.Message, except *hub.Subscription) (Published, error)
	// Push gives m an id and hands its frame in f to exactly one puller of
	// m.Channel, or to the topic's backlog.
	Push(m *message.Message, f message.Format) (Published, error)

	// Subscribe registers a local subscriber of channel. With resume set,
	// it first replays history (see Resume); the subscription stays held
	// until the caller calls Start on it with the response head, which
	// may tell the client Recovered. Without resume, the subscription is
	// held too when opts.Held is set.
	Subscribe(channel string, opts hub.SubscribeOptions, resume *Resume) (*hub.Subscription, Resumed, error)
	Unsubscribe(s *hub.Subscription)
	SubscribePull(topic string, opts hub.SubscribeOptions) (*hub.Subscription, error)
	UnsubscribePull(s *hub.Subscription, unsent [][]byte)

	// History pages the retained messages of channel and below.
	History(channel string, f *message.Filter, q history.PageQuery) (history.Page, error)

	// Err reports why the engine cannot take publishes now (its store or
	// Redis unusable), nil when it can.
	Err() error
	// Stats returns the hub's counters and the history's size.
	Stats() Stats
	// Close ends every subscription and stops the engine.
	Close() error
	// Hub is the engine's local hub: the server binds and ends its
	// subscriptions there (sessions, PROTOCOL.md §8).
	Hub() *hub.Hub
}

// A Cluster is an engine whose bus spans several nodes (Redis): what an
// operator does to a session must reach whichever node holds it, and a
// listing of sessions must see every node's (PROTOCOL.md §8). An engine of
// one node does not implement it.
type Cluster interface {
	// Broadcast hands cmd to the command handler of every node, this one
	// included.
	Broadcast(cmd []byte) error
	// HandleCommands sets the command handler. It is called on one
	// goroutine, in the order the commands were broadcast, and must not
	// block for long.
	HandleCommands(func(cmd []byte))
	// Announce records one of this node's sessions (info: its JSON) under
	// id for every node to list; Withdraw forgets it. Both are best
	// effort: a node that dies takes its sessions with it from listings.
	Announce(id string, info []byte)
	Withdraw(id string)
	// Sessions returns the JSON of every live node's sessions.
	Sessions() ([][]byte, error)
}

// Published is what a publish answers.
type Published struct {
	ID        message.ID
	Reached   int  // subscribers it was queued for (on this node)
	Duplicate bool // the idempotency key was seen: not published again
}

// Resume says what a resuming subscriber wants replayed: everything after
// an id (Since), or the newest Last messages. Max caps the replay
// (--resume-max).
type Resume struct {
	After message.ID
	Since bool
	Last  int
	Max   int
}

// Resumed says what a resume got.
type Resumed struct {
	Replayed  int
	Recovered bool // every message after the id was replayed
}

// Stats are an engine's figures.
type Stats struct {
	hub.Stats
	History history.Stats
}

// ErrUnavailable: the engine cannot take the publish now (its store failed,
// Redis is down); retry later. The server answers 503.
var ErrUnavailable = errors.New("engine unavailable")
