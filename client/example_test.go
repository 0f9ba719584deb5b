package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/msgbus/msgbus/client"
)

// busURL is a running server's URL, such as "http://localhost:8888".

func ExampleNew() {
	// User info in the URL is Basic auth, for servers run with -s SECRET.
	c, err := client.New(client.Config{URL: "http://alice:hunter2@localhost:8888"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.URL())
	// Output: http://localhost:8888
}

func ExampleClient_Publish() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	p, err := c.Publish(ctx, "example/publish", "text/plain", []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("reached", p.Subscribers, "subscribers")

	_, err = c.Publish(ctx, "", "text/plain", []byte("to the root?"))
	fmt.Println(err)
	// Output:
	// reached 0 subscribers
	// client: publish /msgbus/: 400 Bad Request (name a channel to publish to, as in /msgbus/news)
}

func ExampleClient_Subscribe() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A subscriber of "example/news" also receives "example/news/sport".
	// Once Subscribe returns, nothing published is missed.
	sub, err := c.Subscribe(ctx, "example/news", &client.SubscribeOptions{Type: "text/*"})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	c.Publish(ctx, "example/news", "text/plain", []byte("hello"))
	c.Publish(ctx, "example/news", "image/png", []byte("\x89PNG")) // filtered out
	c.Publish(ctx, "example/news/sport", "text/plain; charset=utf-8", []byte("goal"))
	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s %q\n", m.Channel, m.Type, m.Body)
	}
	// Output:
	// example/news text/plain "hello"
	// example/news/sport text/plain; charset=utf-8 "goal"
}

func ExampleSubscription_Next() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := c.Subscribe(ctx, "example/next", nil)
	if err != nil {
		log.Fatal(err)
	}
	c.Publish(ctx, "example/next", "text/plain", []byte("one"))
	c.Publish(ctx, "example/next", "text/plain", []byte("two"))
	time.AfterFunc(100*time.Millisecond, cancel) // some time later, the end

	// Next reconnects by itself when the stream breaks; it returns an
	// error only when the subscription is over.
	for {
		m, err := sub.Next(ctx)
		if errors.Is(err, context.Canceled) {
			fmt.Println("done")
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(m.Body))
	}
	// Output:
	// one
	// two
	// done
}

func ExampleSubscription_Close() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(context.Background(), "", nil) // the root: every channel
	if err != nil {
		log.Fatal(err)
	}
	sub.Close()
	_, err = sub.Next(context.Background())
	fmt.Println(err, errors.Is(err, client.ErrClosed))
	// Output: client: closed true
}

func ExampleClient_History() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, s := range []string{"one", "two", "three", "four", "five"} {
		c.Publish(ctx, "example/history", "text/plain", []byte(s))
	}

	// Page back from the newest, two at a time: each page is oldest
	// first, and the first message's ID asks for the page before it.
	opts := &client.HistoryOptions{Limit: 2}
	for {
		page, err := c.History(ctx, "example/history", opts)
		if err != nil {
			log.Fatal(err)
		}
		var line []string
		for _, m := range page.Messages {
			line = append(line, string(m.Body))
		}
		fmt.Println(strings.Join(line, " "))
		if !page.More {
			break
		}
		opts.Before = page.Messages[0].ID
	}
	// Output:
	// four five
	// two three
	// one
}

func ExampleSubscribeOptions_since() {
	c, err := client.New(client.Config{URL: busURL})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A reader that kept the id of the last message it handled (here, the
	// answer to a publish) resumes after it, even in another process.
	seen, err := c.Publish(ctx, "example/since", "text/plain", []byte("handled"))
	if err != nil {
		log.Fatal(err)
	}
	c.Publish(ctx, "example/since", "text/plain", []byte("missed while away"))

	sub, err := c.Subscribe(ctx, "example/since", &client.SubscribeOptions{Since: seen.ID})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	c.Publish(ctx, "example/since", "text/plain", []byte("live"))
	fmt.Println("recovered:", sub.Recovered())
	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(m.Body))
	}
	// Output:
	// recovered: true
	// missed while away
	// live
}
