package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
)

// DefaultType is the type of a message published with an empty type, as
// the server assumes.
const DefaultType = "application/octet-stream"

// Published is the server's answer to a publish.
type Published struct {
	// ID is the message's id on the server, increasing from 1 (the
	// Msgbus-Id answer header).
	ID uint64
	// Subscribers is how many subscribers it reached (Msgbus-Subscribers).
	Subscribers int
}

// Publish sends body as one message of type contentType to channel and
// returns once the server has queued it for every current subscriber.
// An empty contentType sends none, which the server takes as DefaultType.
// Publishing to the root ("") is refused by the server.
//
// A refusal is a *StatusError (such as "client: publish /msgbus/x: 413
// Request Entity Too Large (message too large: ...)"); a failure to reach
// the server, an *OpError. Publish does not retry: a message may have
// reached subscribers even when the answer was lost.
func (c *Client) Publish(ctx context.Context, channel, contentType string, body []byte) (Published, error) {
	path := busPath(channel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(channel), bytes.NewReader(body))
	if err != nil {
		return Published{}, opError("publish", path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Published{}, opError("publish", path, err)
	}
	defer func() {
		// Drain a little so the connection goes back to the pool.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		return Published{}, statusError("publish", path, resp)
	}
	var p Published
	p.ID, _ = strconv.ParseUint(resp.Header.Get("Msgbus-Id"), 10, 64)
	p.Subscribers, _ = strconv.Atoi(resp.Header.Get("Msgbus-Subscribers"))
	return p, nil
}
