package server

import "testing"

func TestStreamBytesExact(t *testing.T) {
	for _, http11 := range []bool{true, false} {
		ts := startServer(t, Config{})
		c := ts.subscribe(t, "/msgbus/foo", http11)
		ts.publish(t, "/msgbus/foo", "text/plain", "hello")
		ts.publish(t, "/msgbus/foo/bar", "", "child")
		p1 := part("Content-Type: text/plain\r\n", "hello")
		p2 := part("Content-Location: /msgbus/foo/bar\r\nContent-Type: application/octet-stream\r\n", "child")
		if http11 {
			c.expect(chunkOf(p1) + chunkOf(p2))
		} else {
			c.expect(p1 + p2)
		}
		ts.stop(t)
		if http11 {
			if got, want := c.readAll(), "10\r\n--00MsgBus00--\r\n\r\n0\r\n\r\n"; got != want {
				t.Fatalf("end of stream %q, want %q", got, want)
			}
		} else if got, want := c.readAll(), "--00MsgBus00--\r\n"; got != want {
			t.Fatalf("end of stream %q, want %q", got, want)
		}
	}
}
