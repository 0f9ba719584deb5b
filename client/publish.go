package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// DefaultType is the type of a message published with an empty type, as
// the server assumes.
const DefaultType = "application/octet-stream"

// Published is the server's answer to a publish.
type Published struct {
	// ID is the message's id on the server (the Msgbus-Id answer header):
	// an opaque token, the same that subscribers see in Message.ID. Empty
	// from a server that sends none.
	ID string
	// Subscribers is how many subscribers it reached (Msgbus-Subscribers).
	Subscribers int
}

// Publish sends body as one message of type contentType to channel and
// returns once the server has queued it for every current subscriber.
// An empty contentType sends none, which the server takes as DefaultType.
// Publishing to the root ("") is refused by the server.
//
// Publish retries by itself: when the server cannot be reached, the
// connection breaks before its answer, or it answers 503 (busy, or its
// store unavailable), Publish waits (the server's Retry-After when given,
// else a backoff as a Subscription's) and sends the message again, up to
// Config.PublishAttempts times in all, for as long as ctx allows. Every
// attempt carries the same Idempotency-Key, chosen at random per call, so
// a message whose answer was lost is published once and the retry is
// answered with its id. (A server older than message ids ignores the key:
// against it, a retry after a lost answer may publish twice.) When ctx's
// deadline would pass during a wait, or the server asks for a wait over a
// minute, Publish does not wait in vain: it returns the last failure at
// once.
//
// The last failure is returned: a refusal is a *StatusError (such as
// "client: publish /msgbus/x: 413 Request Entity Too Large (message too
// large: ...)"); a failure to reach the server, an *OpError; ctx's cause
// when ctx ended first.
// A refusal other than a 503 is returned at once, never retried: above
// all a 401 (errors.Is(err, ErrUnauthorized): the token was refused, get
// a new one) and a 403 (ErrForbidden: the token lacks the right to
// publish to channel).
func (c *Client) Publish(ctx context.Context, channel, contentType string, body []byte) (Published, error) {
	key := newIdempotencyKey()
	for attempt := 0; ; attempt++ {
		a := c.publishOnce(ctx, channel, contentType, key, body)
		if a.err == nil {
			return a.p, nil
		}
		if ctx.Err() != nil {
			return Published{}, context.Cause(ctx)
		}
		if !a.retry || attempt+1 >= c.attempts {
			return Published{}, a.err
		}
		wait := a.retryAfter
		if wait < 0 {
			wait = c.backoff(attempt)
		}
		if wait > maxRetryAfter {
			return Published{}, a.err // the server asks for more patience than a call has
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			return Published{}, a.err
		}
		if !sleep(ctx, wait) {
			return Published{}, context.Cause(ctx)
		}
	}
}

// maxRetryAfter is the longest Retry-After that Publish waits for; a
// server that asks for more gets the failure returned instead.
const maxRetryAfter = time.Minute

// An attempt is the outcome of one publish request.
type attempt struct {
	p          Published
	err        error
	retry      bool          // err is worth another attempt
	retryAfter time.Duration // the server's Retry-After, or -1
}

// publishOnce sends the message once.
func (c *Client) publishOnce(ctx context.Context, channel, contentType, key string, body []byte) attempt {
	path := busPath(channel)
	a := attempt{retryAfter: -1}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(channel), bytes.NewReader(body))
	if err != nil {
		a.err = opError("publish", path, err)
		return a
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.http.Do(req)
	if err != nil {
		// Not reached, or the answer was lost: try again, unless the
		// certificate is one this client does not trust (it stays so).
		var cve *tls.CertificateVerificationError
		a.err, a.retry = opError("publish", path, err), !errors.As(err, &cve)
		return a
	}
	defer func() {
		// Drain a little so the connection goes back to the pool.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		a.err = c.statusError("publish", path, resp)
		if resp.StatusCode == http.StatusServiceUnavailable {
			a.retry, a.retryAfter = true, parseRetryAfter(resp.Header.Get("Retry-After"))
		}
		return a
	}
	a.p.ID = resp.Header.Get("Msgbus-Id")
	a.p.Subscribers, _ = strconv.Atoi(resp.Header.Get("Msgbus-Subscribers"))
	return a
}

// parseRetryAfter reads a Retry-After value, seconds or an HTTP date, as a
// wait; -1 when there is none or it cannot be read.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return -1
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return -1
}

// newIdempotencyKey returns a random key: 16 bytes in hex.
func newIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
