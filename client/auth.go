package client

import (
	"errors"
	"net/http"
	"strings"
)

// ErrUnauthorized matches (with errors.Is) the *StatusError of a request
// the server answered 401: it took none of the request's credentials, or
// it had none the server wanted. With Config.Token, the token is expired,
// not yet valid, malformed or not signed by a key the server trusts: get a
// new one. (A WebSocket handshake refused by the server's Origin check is
// a 401 too, with the reason "Origin check failed".) Publish does not
// retry it, and a Subscription whose reconnect gets it ends with it.
var ErrUnauthorized = errors.New("client: unauthorized")

// ErrForbidden matches (with errors.Is) the *StatusError of a request the
// server answered 403: the credentials are good but lack the right asked
// for, such as a token whose msgbus.publish patterns do not match the
// channel published to. Publish does not retry it, and a Subscription
// whose reconnect gets it ends with it.
var ErrForbidden = errors.New("client: forbidden")

// checkToken refuses a token that cannot be sent as a bearer token
// (RFC 6750 §2.1: letters, digits, -._~+/ and trailing =), so that a
// pasted "Bearer ..." or a trailing newline is caught by New, not by the
// first request.
func checkToken(token string) error {
	if len(token) > 7 && strings.EqualFold(token[:7], "Bearer ") {
		return errors.New(`client: Token starts with "Bearer ": give the token alone`)
	}
	body := strings.TrimRight(token, "=")
	if body == "" {
		return errors.New("client: Token is only = signs: not a token")
	}
	for i := 0; i < len(body); i++ {
		b := body[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~+/", b) >= 0 {
			continue
		}
		if b <= ' ' || b == 0x7f {
			return errors.New("client: Token holds a space or control character (a trailing newline?): not a token")
		}
		return errors.New("client: Token holds " + quoteByte(b) + ": not a token (a JWT is base64url parts joined by dots)")
	}
	return nil
}

func quoteByte(b byte) string {
	if b < 0x80 {
		return "'" + string(rune(b)) + "'"
	}
	return "a non-ASCII byte"
}

// authHint says what to do about a 401 or 403, when the client knows:
// a token the server refused (it challenges for a Bearer token) needs
// replacing, a token without a right cannot be retried into having it,
// and a server that challenges a request without credentials wants a
// token.
func (c *Client) authHint(op string, resp *http.Response) string {
	bearer := strings.HasPrefix(strings.ToLower(resp.Header.Get("WWW-Authenticate")), "bearer")
	switch {
	case resp.StatusCode == http.StatusUnauthorized && c.token && bearer:
		return "the server refused the token (expired, or not signed by a key it trusts): get a new one"
	case resp.StatusCode == http.StatusUnauthorized && c.auth == "" && bearer:
		return "the server wants a token"
	case resp.StatusCode == http.StatusForbidden && c.token:
		return "the token lacks the right " + rightOf(op)
	}
	return ""
}

// rightOf names the right the request of op needs.
func rightOf(op string) string {
	switch op {
	case "publish", "pub", "push":
		return "to publish here (its msgbus.publish patterns)"
	case "subscribe", "sub", "pull":
		return "to subscribe here (its msgbus.subscribe patterns)"
	case "history":
		return "to read this history (its msgbus.subscribe patterns)"
	}
	return "to use this " + op + " topic (its msgbus.publish and msgbus.subscribe patterns)"
}
