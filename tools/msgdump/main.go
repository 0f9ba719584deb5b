// Command msgdump subscribes to a msgbus channel and prints each message:
// a line with its channel, type, sender and size, then its body.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/tools/internal/toolflags"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "msgdump:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:      "msgdump",
		Usage:     "print the messages of a msgbus channel as they arrive",
		UsageText: "msgdump [-c CHANNEL] [-t TYPES] [--sender SENDERS] [-x] [-q] [-n COUNT] [-u URL]",
		Description: "Each message is a line \"<channel> <type> <sender or -> <n> bytes\", then its body and a blank line.\n" +
			"Without -c, every channel. Reconnects when the stream breaks; Ctrl-C ends.\n\n" +
			"   msgdump -c news\n" +
			"   msgdump -t 'image/*' -x -u http://bus.example:8888\n" +
			"   msgdump -c chat --sender '!bot*,*' -n 1",
		HideHelpCommand: true,
		Flags: []cli.Flag{
			toolflags.URL,
			toolflags.Channel("", "watch `CHANNEL` and the channels below it (default: every channel)"),
			&cli.StringFlag{Name: "type", Aliases: []string{"t"},
				Usage: "only messages whose type matches `PATTERNS`: globs, comma-separated, ! excludes (text/*,!text/html)"},
			&cli.StringFlag{Name: "sender", Usage: "only messages from senders matching `PATTERNS`"},
			&cli.BoolFlag{Name: "hex", Aliases: []string{"x"}, Usage: "print bodies as a hex dump (for binary)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print the header line only, not the body"},
			toolflags.Count("exit after `N` messages (0: never)"),
			toolflags.User,
			toolflags.Secret,
		},
		Action: run,
	}
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; name the channel with -c", c.Args().First())
	}
	cl, err := toolflags.Client(c, client.Config{})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := toolflags.SignalContext()
	defer stop()

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	sub, err := cl.Subscribe(ctx, c.String("channel"), &client.SubscribeOptions{
		Type:      c.String("type"),
		Sender:    c.String("sender"),
		ReuseBody: true,
		OnReconnect: func(err error, wait time.Duration) {
			out.Flush()
			fmt.Fprintf(os.Stderr, "msgdump: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		},
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	fmt.Fprintf(os.Stderr, "msgdump: subscribed to %s/msgbus/%s\n", cl.URL(), c.String("channel"))

	hexDump, quiet, count := c.Bool("hex"), c.Bool("quiet"), c.Int("count")
	for n := 0; count <= 0 || n < count; n++ {
		m, err := sub.Next()
		if errors.Is(err, context.Canceled) {
			return nil // Ctrl-C
		}
		if err != nil {
			return err
		}
		sender := m.Sender
		if sender == "" {
			sender = "-"
		}
		fmt.Fprintf(out, "%s %s %s %d bytes\n", m.Channel, m.Type, sender, len(m.Body))
		if !quiet {
			if hexDump {
				d := hex.Dumper(out)
				d.Write(m.Body)
				d.Close()
			} else {
				out.Write(m.Body)
				if len(m.Body) > 0 && m.Body[len(m.Body)-1] != '\n' {
					out.WriteByte('\n')
				}
			}
			out.WriteByte('\n')
		}
		if err := out.Flush(); err != nil {
			return err // stdout closed: msgdump | head
		}
	}
	return nil
}
