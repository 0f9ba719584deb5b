package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/msgbus/msgbus/client"
)

func ExampleClient_Bus() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	alice, err := c.Bus(ctx, "example/room", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	// With Echo, bob hears himself too.
	bob, err := c.Bus(ctx, "example/room", &client.WSOptions{Echo: true})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	next := func(p *client.Peer) {
		m, err := p.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %q\n", m.Type, m.Body)
	}
	alice.Send(ctx, client.TextFrame, []byte("hi bob"))
	next(bob)
	bob.Send(ctx, client.BinaryFrame, []byte{0xCA, 0xFE})
	next(bob)   // the echo
	next(alice) // alice did not hear herself: this is bob's
	// Output:
	// text/plain; charset=utf-8 "hi bob"
	// application/octet-stream "\xca\xfe"
	// application/octet-stream "\xca\xfe"
}

func ExampleClient_Pub() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A WebSocket publisher reaches HTTP subscribers too, with the channel
	// hierarchy: a subscriber of "example/pub" hears "example/pub/sport".
	sub, err := c.Subscribe(ctx, "example/pub", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	pub, err := c.Pub(ctx, "example/pub/sport", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()

	pub.Send(ctx, client.TextFrame, []byte("goal"))
	m, err := sub.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s %q\n", m.Channel, m.Type, m.Body)
	// Output: example/pub/sport text/plain; charset=utf-8 "goal"
}

func ExampleClient_Sub() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Once Sub returns, nothing published is missed. The server sends
	// textual types as text frames, the rest as binary frames.
	sub, err := c.Sub(ctx, "example/sub", &client.WSOptions{Type: "!image/*,*"})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	c.Publish(ctx, "example/sub", "application/json", []byte(`{"n":1}`))
	c.Publish(ctx, "example/sub", "image/png", []byte("\x89PNG")) // filtered out
	c.Publish(ctx, "example/sub/deeper", "application/cbor", []byte{0xA0})
	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %q\n", m.Type, m.Body)
	}
	// Output:
	// text/plain; charset=utf-8 "{\"n\":1}"
	// application/octet-stream "\xa0"
}

func ExampleClient_Push() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// With no puller yet, pushes wait in the server's backlog.
	push, err := c.Push(ctx, "example/jobs", nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, job := range []string{"one", "two", "three"} {
		if err := push.Send(ctx, client.TextFrame, []byte(job)); err != nil {
			log.Fatal(err)
		}
	}
	// Close returns once the server has handled every push; a *CloseError
	// with code 1013 would mean the backlog was full.
	if err := push.Close(); err != nil {
		var ce *client.CloseError
		if errors.As(err, &ce) && ce.Temporary() {
			log.Print("try again later")
		}
		log.Fatal(err)
	}

	// The first puller to come takes the backlog; then pullers take turns.
	pull, err := c.Pull(ctx, "example/jobs", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer pull.Close()
	for range 3 {
		m, err := pull.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(m.Body))
	}
	// Output:
	// one
	// two
	// three
}

func ExampleClient_Pull() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Two workers share the work, round robin in the order they connected.
	w1, err := c.Pull(ctx, "example/work", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer w1.Close()
	w2, err := c.Pull(ctx, "example/work", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer w2.Close()
	push, err := c.Push(ctx, "example/work", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer push.Close()
	for _, job := range []string{"a", "b", "c", "d"} {
		push.Send(ctx, client.TextFrame, []byte(job))
	}
	for _, w := range []*client.Puller{w1, w2, w1, w2} {
		m, err := w.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(string(m.Body), " ")
	}
	fmt.Println()
	// Output: a b c d
}

func ExampleSubscriber_Next() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := c.Sub(ctx, "example/next", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	// Next's own context bounds one wait; the connection stays open.
	wait, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	_, err = sub.Next(wait)
	stop()
	fmt.Println(err)

	// The context given to Sub ends the connection.
	cancel()
	_, err = sub.Next(context.Background())
	fmt.Println(err)
	// Output:
	// context deadline exceeded
	// context canceled
}
