package redis

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/message"
)

// scanBatch is how many messages one range script returns: a resume of
// 10,000 messages is ten round trips.
const scanBatch = 1000

// A view is what a range call said about a channel's view besides its
// messages.
type view struct {
	last, lost message.ID // the newest id given; the newest evicted from the view
	seq        uint64     // the feed's sequence number at that moment
}

// A stored message and its feed sequence number.
type stored struct {
	m   *message.Message
	seq uint64
}

// scan walks channel's view (its messages and those below it) from bound
// (exclusive; none when !hasBound), newest first for "desc" and oldest
// first for "asc", calling fn on each message until fn returns false or
// the view ends. It returns what the first call said of the view.
func (e *Engine) scan(channel, dir string, bound message.ID, hasBound bool, batch int, fn func(*message.Message) bool) (view, error) {
	return e.scanStored(channel, dir, bound, hasBound, batch, func(s stored) bool { return fn(s.m) })
}

// scanStored is scan with each message's feed sequence number.
func (e *Engine) scanStored(channel, dir string, bound message.ID, hasBound bool, batch int, fn func(stored) bool) (view, error) {
	var v view
	for first := true; ; first = false {
		b := ""
		if hasBound {
			b = bound.String()
		}
		ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
		r, err := rangeScript.Exec(ctx, e.rc, nil, []string{e.prefix, channel, dir, b, strconv.Itoa(batch)}).AsStrSlice()
		cancel()
		if err != nil {
			e.setHealth(err)
			return v, unavailable(err)
		}
		if len(r) < 3 || (len(r)-3)%6 != 0 {
			return v, fmt.Errorf("redis range script answered %d fields", len(r))
		}
		if first {
			if r[0] != "" {
				v.last, _ = message.ParseID(r[0])
			}
			if r[1] != "" {
				v.lost, _ = message.ParseID(r[1])
			}
		}
		v.seq, _ = strconv.ParseUint(r[2], 10, 64)
		for i := 3; i < len(r); i += 6 {
			id, err := message.ParseID(r[i])
			if err != nil {
				return v, fmt.Errorf("redis history holds id %q: %w", r[i], err)
			}
			m := &message.Message{
				ID: id, Time: time.UnixMilli(int64(id.Ms)),
				Channel: r[i+1], Type: r[i+2], Sender: r[i+3], Body: []byte(r[i+4]),
			}
			seq, _ := strconv.ParseUint(r[i+5], 10, 64)
			if !fn(stored{m, seq}) {
				return v, nil
			}
			bound, hasBound = id, true
		}
		if batch == 0 || (len(r)-3)/6 < batch {
			return v, nil
		}
	}
}

// expired reports whether m is past the history's age: readers skip what
// publishes have not trimmed yet.
func (e *Engine) expired(m *message.Message, now time.Time) bool {
	return e.lim.TTL > 0 && m.Time.Before(now.Add(-e.lim.TTL))
}

// replay is Store.Replay's rules on Redis's history (see history.Memory).
func (e *Engine) replay(channel string, f *message.Filter, q engine.Resume) (history.Replay, error) {
	r := history.Replay{Recovered: true}
	if e.lim.Size <= 0 {
		r.Recovered = !q.Since
		return r, nil
	}
	want := q.Max
	switch {
	case q.Since:
	case q.Last <= 0:
		return r, nil
	case want <= 0 || q.Last < want:
		want = q.Last
	}
	batch := scanBatch
	if want > 0 {
		batch = min(scanBatch, max(2*want, 16))
	}
	now := time.Now()
	var out []*message.Message
	v, err := e.scan(channel, "desc", message.ID{}, false, batch, func(m *message.Message) bool {
		if q.Since && !q.After.Less(m.ID) {
			return false
		}
		if e.expired(m, now) {
			r.Recovered = r.Recovered && !q.Since // something after the id is gone
			return false                          // and everything older too
		}
		if f != nil && !f.Match(m) {
			return true
		}
		if want > 0 && len(out) == want {
			if q.Since {
				r.Recovered = false // --resume-max cut it: the newest are kept
			}
			return false
		}
		out = append(out, m)
		return true
	})
	if err != nil {
		return history.Replay{}, err
	}
	if q.Since && (v.last.Less(q.After) || q.After.Less(v.lost)) {
		r.Recovered = false
	}
	slices.Reverse(out)
	r.Messages = out
	return r, nil
}

// History implements engine.Engine.
func (e *Engine) History(channel string, f *message.Filter, q history.PageQuery) (history.Page, error) {
	limit := q.Limit
	if limit <= 0 || limit > history.MaxPage {
		limit = history.MaxPage
	}
	var p history.Page
	if e.lim.Size <= 0 || (q.HasBefore && q.Before.IsZero()) || (q.HasAfter && q.After == (message.ID{Ms: math.MaxUint64, Seq: math.MaxUint64})) {
		return p, nil // nothing before the zero id, nor after the last possible one
	}
	now := time.Now()
	batch := min(scanBatch, 2*limit+2)
	if q.HasAfter && !q.HasBefore {
		_, err := e.scan(channel, "asc", q.After, true, batch, func(m *message.Message) bool {
			if e.expired(m, now) || (f != nil && !f.Match(m)) {
				return true
			}
			if len(p.Messages) == limit {
				p.More = true
				return false
			}
			p.Messages = append(p.Messages, m)
			return true
		})
		return p, err
	}
	_, err := e.scan(channel, "desc", q.Before, q.HasBefore, batch, func(m *message.Message) bool {
		if q.HasAfter && !q.After.Less(m.ID) {
			return false
		}
		if e.expired(m, now) {
			return false
		}
		if f != nil && !f.Match(m) {
			return true
		}
		if len(p.Messages) == limit {
			p.More = true
			return false
		}
		p.Messages = append(p.Messages, m)
		return true
	})
	slices.Reverse(p.Messages)
	return p, err
}
