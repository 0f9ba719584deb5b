package redis

import (
	_ "embed"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

//go:embed take.lua
var takeLua string

var takeScript = rueidis.NewLuaScript(commonLua + takeLua)

// A pullTopic is a topic with pullers on this node.
type pullTopic struct {
	pullers int
	format  message.Format // the pullers' (pushes are framed for it here)
}

// Push implements engine.Engine: the push waits in Redis for a puller on
// any node; ErrBacklogFull when the topic's list is at its limits.
func (e *Engine) Push(m *message.Message, f message.Format) (engine.Published, error) {
	if e.closed.Load() {
		return engine.Published{}, hub.ErrClosed
	}
	lim := func(v, def int) string {
		if v <= 0 {
			v = def
		}
		return strconv.Itoa(v)
	}
	r, err := e.exec(publishScript, []string{
		e.prefix, "push", m.Channel, m.Type, m.Sender, "", string(m.Body),
		lim(e.hubCfg.MaxBacklogMessages, hub.DefaultMaxBacklogMessages),
		lim(e.hubCfg.MaxBacklogBytes, hub.DefaultMaxBacklogBytes),
		lim(e.hubCfg.MaxBacklogTotal, hub.DefaultMaxBacklogTotalBytes),
		"0", "0", "",
	})
	if err != nil {
		return engine.Published{}, err
	}
	id, err := message.ParseID(r[1])
	if err != nil {
		return engine.Published{}, err
	}
	if r[0] == "full" {
		return engine.Published{}, hub.ErrBacklogFull
	}
	m.ID, m.Time = id, time.UnixMilli(int64(id.Ms))
	return engine.Published{ID: id}, nil
}

// exec runs a script that answers an array of strings, keeping Err up to
// date.
func (e *Engine) exec(s *rueidis.Lua, args []string) ([]string, error) {
	ctx, cancel := e.callContext()
	defer cancel()
	r, err := s.Exec(ctx, e.rc, nil, args).AsStrSlice()
	if err != nil {
		if e.closed.Load() {
			return nil, hub.ErrClosed
		}
		e.setHealth(err)
		return nil, unavailable(err)
	}
	e.setHealth(nil)
	if len(r) < 2 {
		return nil, errors.New("redis script answered " + strings.Join(r, " "))
	}
	return r, nil
}

// SubscribePull implements engine.Engine: a puller here makes this node
// take its topic's pushes from Redis.
func (e *Engine) SubscribePull(topic string, opts hub.SubscribeOptions) (*hub.Subscription, error) {
	s, err := e.hub.SubscribePull(topic, opts)
	if err != nil {
		return nil, err
	}
	e.pullMu.Lock()
	t := e.pulls[topic]
	if t == nil {
		t = &pullTopic{format: opts.Format}
		e.pulls[topic] = t
	}
	t.pullers++
	e.pullMu.Unlock()
	e.wakeTaker(topic)
	return s, nil
}

// UnsubscribePull implements engine.Engine. What the puller held goes to
// the other pullers of this node, or waits for the next one here: pushes
// a node took do not go back to Redis.
func (e *Engine) UnsubscribePull(s *hub.Subscription, unsent [][]byte) {
	e.hub.UnsubscribePull(s, unsent)
	e.pullMu.Lock()
	if t := e.pulls[s.Channel()]; t != nil {
		if t.pullers--; t.pullers == 0 {
			delete(e.pulls, s.Channel())
		}
	}
	e.pullMu.Unlock()
	e.wakeTaker(s.Channel())
}

// wakeTaker asks the taker to look at topic; it never blocks (the taker
// also looks at every topic with pullers each second).
func (e *Engine) wakeTaker(topic string) {
	select {
	case e.work <- topic:
	default:
	}
}

// take moves pushes from Redis to this node's pullers: when told a topic
// has some, when a puller comes, and each second for every topic with
// pullers here (a notice lost with a connection; a puller that has room
// again).
func (e *Engine) take() {
	defer e.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case topic := <-e.work:
			e.takeTopic(topic)
		case <-tick.C:
			e.pullMu.Lock()
			topics := make([]string, 0, len(e.pulls))
			for t := range e.pulls {
				topics = append(topics, t)
			}
			e.pullMu.Unlock()
			for _, t := range topics {
				e.takeTopic(t)
			}
		}
	}
}

// takeTopic takes topic's pushes from Redis while a puller here has room.
func (e *Engine) takeTopic(topic string) {
	for e.ctx.Err() == nil {
		e.pullMu.Lock()
		t := e.pulls[topic]
		var f message.Format
		if t != nil {
			f = t.format
		}
		e.pullMu.Unlock()
		if f == nil || !e.hub.PullRoom(topic, 1) {
			return
		}
		ctx, cancel := e.callContext()
		item, err := takeScript.Exec(ctx, e.rc, nil, []string{e.prefix, topic, "take"}).ToString()
		cancel()
		if rueidis.IsRedisNil(err) {
			return
		}
		if err != nil {
			e.setHealth(err)
			return
		}
		m, ok := parseItem(topic, item)
		if !ok {
			e.log.Error("redis push list holds a malformed item", "topic", topic)
			continue
		}
		if _, err := e.hub.Push(m, f, nil); err != nil {
			// The pullers filled up meanwhile: back to the head.
			ctx, cancel := e.callContext()
			takeScript.Exec(ctx, e.rc, nil, []string{e.prefix, topic, "back", item})
			cancel()
			return
		}
	}
}

// parseItem parses a push list item, "<id>\n<type>\n<sender>\n<body>".
func parseItem(topic, item string) (*message.Message, bool) {
	parts := strings.SplitN(item, "\n", 4)
	if len(parts) != 4 {
		return nil, false
	}
	id, err := message.ParseID(parts[0])
	if err != nil {
		return nil, false
	}
	return &message.Message{ID: id, Time: time.UnixMilli(int64(id.Ms)), Channel: topic,
		Type: parts[1], Sender: parts[2], Body: []byte(parts[3])}, true
}
