// Package local is the in-process engine: the hub's fan-out, ids from the
// clock, and a history store (memory, or durable on disk). One process is
// the whole bus.
package local

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// DefaultKeyTTL is how long an idempotency key is remembered (PROTOCOL.md
// §6).
const DefaultKeyTTL = 5 * time.Minute

// Config configures the engine. The zero Config is usable: default hub
// limits and a memory history with the default limits.
type Config struct {
	Hub hub.Config
	// Store keeps history; nil means a memory store with Limits.
	Store  history.Store
	Limits history.Limits // for the memory store when Store is nil
	KeyTTL time.Duration  // zero means DefaultKeyTTL
}

// Engine is the local engine. Its methods are safe for concurrent use.
type Engine struct {
	hub    *hub.Hub
	store  history.Store
	keyTTL time.Duration

	// Guarded by the hub's order lock: every Order function runs under it.
	ids  message.IDGen
	keys keyMemory

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error
}

var _ engine.Engine = (*Engine)(nil)

// New starts an engine. Ids go on after the store's newest, so they keep
// increasing across a restart on a durable store.
func New(cfg Config) *Engine {
	if cfg.Store == nil {
		cfg.Store = history.NewMemory(cfg.Limits, nil)
	}
	if cfg.KeyTTL <= 0 {
		cfg.KeyTTL = DefaultKeyTTL
	}
	e := &Engine{hub: hub.New(cfg.Hub), store: cfg.Store, keyTTL: cfg.KeyTTL}
	e.ids.Resume(cfg.Store.LastID())
	e.keys.m = make(map[keyOf]*message.Message)
	for _, m := range cfg.Store.Recent(time.Now().Add(-cfg.KeyTTL)) {
		e.keys.add(m)
	}
	// Messages past their TTL are let go at the next publish (the store's
	// Append evicts them) and never served meanwhile, so no timer runs.
	return e
}

// Hub returns the engine's hub.
func (e *Engine) Hub() *hub.Hub { return e.hub }

// errDuplicate stops a publish whose key was seen; Publish answers with
// the first message.
var errDuplicate = errors.New("duplicate idempotency key")

// Publish implements engine.Engine.
func (e *Engine) Publish(m *message.Message) (engine.Published, error) {
	var first *message.Message
	n, err := e.hub.Publish(m, func(m *message.Message) error {
		if e.closed.Load() {
			return hub.ErrClosed // its subscribers are gone: refuse, so the client retries elsewhere
		}
		if err := e.store.Err(); err != nil {
			return unavailable(err)
		}
		now := time.Now()
		if m.Key != "" {
			if f := e.keys.lookup(m.Channel, m.Key, now.Add(-e.keyTTL)); f != nil {
				first = f
				return errDuplicate
			}
		}
		e.stamp(m, now)
		if err := e.store.Append(m); err != nil {
			return unavailable(err)
		}
		if m.Key != "" {
			e.keys.add(m)
			e.keys.forget(now.Add(-e.keyTTL))
		}
		return nil
	})
	switch {
	case first != nil:
		if err := e.store.Sync(first); err != nil {
			return engine.Published{}, unavailable(err)
		}
		return engine.Published{ID: first.ID, Duplicate: true}, nil // Reached: not published again
	case err != nil:
		return engine.Published{}, err
	}
	if err := e.store.Sync(m); err != nil {
		return engine.Published{ID: m.ID, Reached: n}, unavailable(err)
	}
	return engine.Published{ID: m.ID, Reached: n}, nil
}

// stamp gives m its id and time. The hub's order lock must be held.
func (e *Engine) stamp(m *message.Message, now time.Time) {
	m.Time = now
	m.ID = e.ids.Next(now)
}

// order is the Order of what has no history: the peer bus and pushes.
func (e *Engine) order(m *message.Message) error {
	e.stamp(m, time.Now())
	return nil
}

// PublishExact implements engine.Engine.
func (e *Engine) PublishExact(m *message.Message, except *hub.Subscription) (engine.Published, error) {
	n, err := e.hub.PublishExact(m, e.order, except)
	return engine.Published{ID: m.ID, Reached: n}, err
}

// Push implements engine.Engine.
func (e *Engine) Push(m *message.Message, f message.Format) (engine.Published, error) {
	n, err := e.hub.Push(m, f, e.order)
	return engine.Published{ID: m.ID, Reached: n}, err
}

// Subscribe implements engine.Engine. The subscriber is in the index
// before history is read, and the hub appends to history before it looks
// up subscribers, so every message is either replayed or delivered live;
// Replay drops the live ones the replay also has.
func (e *Engine) Subscribe(channel string, opts hub.SubscribeOptions, resume *engine.Resume) (*hub.Subscription, engine.Resumed, error) {
	if resume == nil {
		s, err := e.hub.Subscribe(channel, opts)
		return s, engine.Resumed{Recovered: true}, err
	}
	opts.Held = true
	s, err := e.hub.Subscribe(channel, opts)
	if err != nil {
		return nil, engine.Resumed{}, err
	}
	r := e.store.Replay(channel, opts.Filter, history.ReplayQuery{
		After: resume.After, Since: resume.Since, Last: resume.Last, Max: resume.Max,
	})
	s.Replay(r.Messages, resume.After)
	return s, engine.Resumed{Replayed: len(r.Messages), Recovered: r.Recovered}, nil
}

// Unsubscribe implements engine.Engine.
func (e *Engine) Unsubscribe(s *hub.Subscription) { e.hub.Unsubscribe(s) }

// SubscribePull implements engine.Engine.
func (e *Engine) SubscribePull(topic string, opts hub.SubscribeOptions) (*hub.Subscription, error) {
	return e.hub.SubscribePull(topic, opts)
}

// UnsubscribePull implements engine.Engine.
func (e *Engine) UnsubscribePull(s *hub.Subscription, unsent [][]byte) {
	e.hub.UnsubscribePull(s, unsent)
}

// History implements engine.Engine.
func (e *Engine) History(channel string, f *message.Filter, q history.PageQuery) (history.Page, error) {
	return e.store.Page(channel, f, q), nil
}

// Err implements engine.Engine.
func (e *Engine) Err() error {
	if err := e.store.Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Stats implements engine.Engine.
func (e *Engine) Stats() engine.Stats {
	return engine.Stats{Stats: e.hub.Stats(), History: e.store.Stats()}
}

// Close implements engine.Engine: subscribers first, then the store.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		e.hub.Close()
		e.closeErr = e.store.Close()
	})
	return e.closeErr
}

func unavailable(err error) error {
	if errors.Is(err, engine.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
}

// keyMemory remembers recent idempotency keys by channel, in the order
// they came, so that forgetting the old ones costs O(1) each.
type keyMemory struct {
	m     map[keyOf]*message.Message
	order []keyOf // oldest first, from head
	head  int
}

type keyOf struct{ channel, key string }

func (k *keyMemory) lookup(channel, key string, oldest time.Time) *message.Message {
	if e, ok := k.m[keyOf{channel, key}]; ok && !e.Time.Before(oldest) {
		return e
	}
	return nil
}

func (k *keyMemory) add(m *message.Message) {
	id := keyOf{m.Channel, m.Key}
	if _, ok := k.m[id]; !ok {
		k.order = append(k.order, id)
	}
	k.m[id] = m
}

// forget lets go of the keys older than oldest.
func (k *keyMemory) forget(oldest time.Time) {
	for k.head < len(k.order) {
		id := k.order[k.head]
		if e, ok := k.m[id]; ok && !e.Time.Before(oldest) {
			break
		}
		delete(k.m, id)
		k.order[k.head] = keyOf{}
		k.head++
	}
	if k.head > 64 && k.head*2 > len(k.order) {
		k.order = append(k.order[:0], k.order[k.head:]...)
		k.head = 0
	}
}
