package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// HistoryOptions choose a page of History. The zero value (or nil) is the
// newest messages, as many as the server gives by default.
type HistoryOptions struct {
	// Before asks for the messages just before the one with this id
	// (?before=): to page back, give the ID of the first message of the
	// page you have. After asks for those just after it (?after=): to page
	// forward, give the ID of the last. At most one of them may be set;
	// neither asks for the newest.
	Before, After string
	// Limit caps the page's messages (?limit=). Zero means the server's
	// default (50); the server gives at most 1000.
	Limit int
	// Type and Sender filter as SubscribeOptions' do.
	Type, Sender string
}

// A HistoryPage is one page of a channel's retained messages.
type HistoryPage struct {
	// Messages are oldest first, each with its ID and Time. Their bodies
	// are the caller's.
	Messages []Message
	// More reports whether the server retains more matching messages
	// beyond this page, in the direction asked: older ones before the
	// first message (Before, or neither), newer ones after the last
	// (After).
	More bool
}

// History returns a page of the messages the server retains of channel and
// of the channels below it ("" is the root: every channel), through
// opts's filters; opts may be nil. A channel the server knows nothing of
// gives an empty page.
//
// A refusal is a *StatusError ("client: history /history/x: 401
// Unauthorized (...)"); a failure to reach the server or to read its
// answer, an *OpError.
func (c *Client) History(ctx context.Context, channel string, opts *HistoryOptions) (HistoryPage, error) {
	path := (&url.URL{Path: "/history/" + channel}).EscapedPath()
	var o HistoryOptions
	if opts != nil {
		o = *opts
	}
	if o.Before != "" && o.After != "" {
		return HistoryPage{}, &OpError{Op: "history", Path: path, Err: errors.New("give Before or After, not both")}
	}
	q := url.Values{}
	for _, p := range []struct{ name, value string }{
		{"before", o.Before}, {"after", o.After}, {"type", o.Type}, {"sender", o.Sender},
	} {
		if p.value != "" {
			q.Set(p.name, p.value)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.urlAt("/history/", channel, q), nil)
	if err != nil {
		return HistoryPage{}, opError("history", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return HistoryPage{}, context.Cause(ctx)
		}
		return HistoryPage{}, opError("history", path, err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return HistoryPage{}, c.statusError("history", path, resp)
	}
	page, err := decodeHistory(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return HistoryPage{}, context.Cause(ctx)
		}
		return HistoryPage{}, &OpError{Op: "history", Path: path, Err: err}
	}
	return page, nil
}

// historyMessage is a message of the server's /history answer.
type historyMessage struct {
	ID       string `json:"id"`
	Channel  string `json:"channel"`
	Type     string `json:"type"`
	From     string `json:"from"`
	Time     string `json:"time"`
	Body     string `json:"body"`
	Encoding string `json:"encoding"`
}

// decodeHistory reads a /history answer.
func decodeHistory(r io.Reader) (HistoryPage, error) {
	var answer struct {
		Messages []historyMessage `json:"messages"`
		More     bool             `json:"more"`
	}
	if err := json.NewDecoder(r).Decode(&answer); err != nil {
		return HistoryPage{}, fmt.Errorf("reading the answer: %w", err)
	}
	page := HistoryPage{Messages: make([]Message, 0, len(answer.Messages)), More: answer.More}
	for i, hm := range answer.Messages {
		m, err := hm.message()
		if err != nil {
			return HistoryPage{}, fmt.Errorf("message %d (id %q): %w", i, hm.ID, err)
		}
		page.Messages = append(page.Messages, m)
	}
	return page, nil
}

func (hm *historyMessage) message() (Message, error) {
	m := Message{ID: hm.ID, Channel: hm.Channel, Type: hm.Type, Sender: hm.From}
	switch hm.Encoding {
	case "utf-8":
		m.Body = []byte(hm.Body)
	case "base64":
		b, err := base64.StdEncoding.DecodeString(hm.Body)
		if err != nil {
			return Message{}, fmt.Errorf("bad base64 body: %w", err)
		}
		m.Body = b
	default:
		return Message{}, fmt.Errorf("unknown encoding %q", hm.Encoding)
	}
	if hm.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, hm.Time)
		if err != nil {
			return Message{}, fmt.Errorf("bad time: %w", err)
		}
		m.Time = t
	}
	return m, nil
}
