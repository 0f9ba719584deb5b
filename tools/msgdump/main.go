// Command msgdump subscribes to a msgbus channel and prints each message:
// a key=value line with its channel, type, sender and size, then its body;
// or, with --json, one JSON object per message.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/tools/internal/msgfmt"
	"github.com/msgbus/msgbus/tools/internal/toolflags"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "msgdump:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	shared := toolflags.Shared{
		Channel: "watch `CHANNEL` and the channels below it (default: every channel)",
		Type:    "only messages whose type matches `PATTERNS`: globs, comma-separated, ! excludes (text/*,!text/html)",
		Count:   "exit after `N` messages (0: never)",
		JSON: "print each message as one JSON line, {\"id\",\"channel\",\"type\",\"from\",\"time\",\"body\",\"encoding\"} " +
			"as in /history: the body as text (encoding utf-8) or base64; id when the stream carries it, from unless anonymous",
	}
	return &cli.App{
		Name:      "msgdump",
		Usage:     "print the messages of a msgbus channel as they arrive",
		UsageText: "msgdump [-c CHANNEL] [-t TYPES] [--sender SENDERS] [-x | -q | --json] [-n COUNT] [-u URL]",
		Description: "Each message is a line \"channel=<channel> type=<type> from=<sender> size=<bytes>\", then its body,\n" +
			"a line end if the body has none, and a blank line. The line's values are percent-encoded (space, %,\n" +
			"control and non-ASCII bytes as %XX), so it splits on spaces and each field at its first =; from is\n" +
			"empty for an anonymous sender. On a terminal, control characters in a body are shown escaped (\\x1b)\n" +
			"and a body that is not UTF-8 text as a hex dump of its start; piped or redirected, bodies are written\n" +
			"byte for byte. --json writes one JSON object per line instead, shaped as a message of the server's\n" +
			"/history (its id included), with time the time of receipt. Without -c, every channel. Reconnects when\n" +
			"the stream breaks, resuming after the last message it printed, and says so on stderr when it is back\n" +
			"(and when the server could not replay all that was published meanwhile); Ctrl-C ends.\n\n" +
			"   msgdump -c news\n" +
			"   msgdump -t 'image/*' -x -u http://bus.example:8888\n" +
			"   msgdump -c chat --sender '!bot*,*' -n 1\n" +
			"   msgdump -c sensors --json | jq -r .body",
		HideHelpCommand: true,
		Flags: shared.Flags(
			&cli.StringFlag{Name: "sender", Usage: "only messages from senders matching `PATTERNS`"},
			&cli.BoolFlag{Name: "hex", Aliases: []string{"x"}, Usage: "print bodies as a hex dump (for binary)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print the header line only, not the body"},
		),
		Action: run,
	}
}

// terminalPreview is how much of a binary body a terminal is shown.
const terminalPreview = 256

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; name the channel with -c", c.Args().First())
	}
	asJSON := c.Bool(toolflags.JSONName)
	if asJSON && (c.Bool("hex") || c.Bool("quiet")) {
		return errors.New("--json prints every message whole; leave out -x and -q")
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
	channel := c.String(toolflags.ChannelName)
	sub, err := cl.Subscribe(ctx, channel, &client.SubscribeOptions{
		Type:      c.String(toolflags.TypeName),
		Sender:    c.String("sender"),
		ReuseBody: true,
		OnReconnect: func(err error, wait time.Duration) {
			out.Flush()
			fmt.Fprintf(os.Stderr, "msgdump: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		},
		OnReconnected: func(r client.Reconnected) {
			fmt.Fprintf(os.Stderr, "msgdump: reconnected to %s/msgbus/%s after %s, %v without a stream\n",
				cl.URL(), channel, msgfmt.Count(r.Attempts, "attempt"), r.Down.Round(time.Millisecond))
			if !r.Recovered {
				fmt.Fprintln(os.Stderr, "msgdump: messages published meanwhile may be missing: the server could not replay them all")
			}
		},
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	fmt.Fprintf(os.Stderr, "msgdump: subscribed to %s/msgbus/%s\n", cl.URL(), channel)

	p := printer{out: out, hex: c.Bool("hex"), quiet: c.Bool("quiet"), terminal: toolflags.IsTerminal(os.Stdout)}
	if asJSON {
		p.json = json.NewEncoder(out)
		p.json.SetEscapeHTML(false)
	}
	count := c.Int(toolflags.CountName)
	for n := 0; count <= 0 || n < count; n++ {
		m, err := sub.Next(ctx)
		if errors.Is(err, context.Canceled) {
			return nil // Ctrl-C
		}
		if err != nil {
			return err
		}
		if err := p.print(m); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err // stdout closed: msgdump | head
		}
	}
	return nil
}

// A printer writes messages in the form the flags chose.
type printer struct {
	out      *bufio.Writer
	json     *json.Encoder // --json, else nil
	hex      bool          // -x
	quiet    bool          // -q
	terminal bool          // stdout is a terminal: no raw bytes
}

func (p *printer) print(m client.Message) error {
	if p.json != nil {
		return p.json.Encode(msgfmt.NewJSONMessage(m, time.Now()))
	}
	// The line stays as the README shows it, without the id: --json has it.
	line := m
	line.ID = ""
	p.out.WriteString(msgfmt.HeaderLine(line))
	p.out.WriteByte('\n')
	if p.quiet {
		return nil
	}
	body := m.Body
	switch {
	case p.hex:
		dumpHex(p.out, body)
	case p.terminal:
		shown, ok := msgfmt.ForTerminal(body)
		if !ok {
			dumpHex(p.out, body[:min(len(body), terminalPreview)])
			if len(body) > terminalPreview {
				fmt.Fprintf(p.out, "... and %s more (not UTF-8 text: -x dumps it all; redirected, msgdump writes the bytes)\n",
					msgfmt.Count(len(body)-terminalPreview, "byte"))
			}
			break
		}
		writeText(p.out, shown)
	default:
		writeText(p.out, body)
	}
	return p.out.WriteByte('\n')
}

// writeText writes b and a line end unless b ends with one.
func writeText(w *bufio.Writer, b []byte) {
	w.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		w.WriteByte('\n')
	}
}

func dumpHex(w io.Writer, b []byte) {
	d := hex.Dumper(w)
	d.Write(b)
	d.Close()
}
