package redis

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/msgbus/msgbus/server/engine"
)

// Sessions on a bus of several nodes (PROTOCOL.md §8), the engine's part:
//
//   - A command (log out, bind, unbind) is published on the "ctl" channel,
//     which every node's feed connection subscribes to beside "live". It
//     enters the deliverer's queue in the feed's order, so a bind runs
//     before a message published after it.
//   - Every node records its sessions in one hash, "sessions": id →
//     "<node> <json>", and keeps a key "node:<node>" alive (the ping sets
//     it every second, expiring after nodeTTL). A listing drops, and
//     deletes, the sessions of nodes whose key has expired: a node killed
//     with kill -9 takes its sessions with it within nodeTTL.
//
// Announcing and withdrawing are best effort and never make a subscriber
// wait for Redis: a goroutine sends them, in batches.
const nodeTTL = 5 * time.Second

// commandMark starts a command in the deliverer's queue; a feed message
// never starts with a control character.
const commandMark = "\x01"

var _ engine.Cluster = (*Engine)(nil)

// Broadcast implements engine.Cluster.
func (e *Engine) Broadcast(cmd []byte) error {
	ctx, cancel := e.callContext()
	defer cancel()
	err := e.rc.Do(ctx, e.rc.B().Publish().Channel(e.prefix+"ctl").Message(rueidis.BinaryString(cmd)).Build()).Error()
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// HandleCommands implements engine.Cluster.
func (e *Engine) HandleCommands(fn func(cmd []byte)) { e.onCommand.Store(&fn) }

// runCommand runs a broadcast command on the deliverer's goroutine.
func (e *Engine) runCommand(cmd string) {
	if fn := e.onCommand.Load(); fn != nil {
		(*fn)([]byte(cmd))
	}
}

// aliveCommand is the ping's command: it refreshes this node's liveness,
// answering nil when the key was not there.
func (e *Engine) aliveCommand() rueidis.Completed {
	return e.rc.B().Set().Key(e.prefix + "node:" + e.node).Value("1").Get().Px(nodeTTL).Build()
}

// leave drops this node's liveness key on Close, so that listings forget
// its sessions at once.
func (e *Engine) leave() {
	ctx, cancel := e.callContext()
	defer cancel()
	e.rc.Do(ctx, e.rc.B().Del().Key(e.prefix+"node:"+e.node).Build())
}

// A sessionOp is an Announce (info set) or a Withdraw (info nil); one
// without an id announces every session of this node again.
type sessionOp struct {
	id   string
	info []byte
}

// Announce implements engine.Cluster.
func (e *Engine) Announce(id string, info []byte) { e.queueSessionOp(sessionOp{id, info}) }

// Withdraw implements engine.Cluster.
func (e *Engine) Withdraw(id string) { e.queueSessionOp(sessionOp{id: id}) }

func (e *Engine) queueSessionOp(op sessionOp) {
	if op.id == "" {
		select { // a full queue will be written, and the next ping asks again
		case e.sessionOps <- op:
		default:
		}
		return
	}
	select {
	case e.sessionOps <- op:
	default:
		e.sessionOpsDropped.Add(1) // Redis is slow or down: the listing misses it
	}
}

// writeSessions sends queued announcements to Redis until Close, as many
// in one round trip as have queued up.
func (e *Engine) writeSessions() {
	defer e.wg.Done()
	key := e.prefix + "sessions"
	for {
		var batch []sessionOp
		select {
		case <-e.ctx.Done():
			return
		case op := <-e.sessionOps:
			batch = append(batch, op)
		}
	more:
		for len(batch) < 512 {
			select {
			case op := <-e.sessionOps:
				batch = append(batch, op)
			default:
				break more
			}
		}
		cmds := make(rueidis.Commands, 0, len(batch))
		for _, op := range batch {
			switch {
			case op.id == "":
				for id, info := range e.announced {
					cmds = append(cmds, e.rc.B().Hset().Key(key).FieldValue().FieldValue(id, e.node+" "+string(info)).Build())
				}
				continue
			case op.info == nil:
				delete(e.announced, op.id)
			default:
				e.announced[op.id] = op.info
			}
			if op.info == nil {
				cmds = append(cmds, e.rc.B().Hdel().Key(key).Field(op.id).Build())
			} else {
				cmds = append(cmds, e.rc.B().Hset().Key(key).FieldValue().FieldValue(op.id, e.node+" "+string(op.info)).Build())
			}
		}
		ctx, cancel := e.callContext()
		for _, r := range e.rc.DoMulti(ctx, cmds...) {
			if r.Error() != nil {
				e.sessionOpsDropped.Add(1)
			}
		}
		cancel()
	}
}

// Sessions implements engine.Cluster: every live node's sessions.
func (e *Engine) Sessions() ([][]byte, error) {
	ctx, cancel := e.callContext()
	defer cancel()
	key := e.prefix + "sessions"
	all, err := e.rc.Do(ctx, e.rc.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return nil, unavailable(err)
	}
	byNode := map[string][]string{} // node -> ids
	for id, v := range all {
		node, _, _ := strings.Cut(v, " ")
		byNode[node] = append(byNode[node], id)
	}
	var dead []string
	for node, ids := range byNode {
		n, err := e.rc.Do(ctx, e.rc.B().Exists().Key(e.prefix+"node:"+node).Build()).AsInt64()
		if err != nil {
			return nil, unavailable(err)
		}
		if n == 0 {
			dead = append(dead, ids...)
			for _, id := range ids {
				delete(all, id)
			}
		}
	}
	if len(dead) > 0 {
		e.rc.Do(ctx, e.rc.B().Hdel().Key(key).Field(dead...).Build())
	}
	out := make([][]byte, 0, len(all))
	for _, v := range all {
		_, info, _ := strings.Cut(v, " ")
		out = append(out, []byte(info))
	}
	return out, nil
}

// sessionState is the engine's part of the session machinery.
type sessionState struct {
	onCommand         atomic.Pointer[func([]byte)]
	sessionOps        chan sessionOp
	sessionOpsDropped atomic.Uint64
	announced         map[string][]byte // this node's sessions; owned by writeSessions
}
