// Command msgsend publishes a message to a msgbus channel: the arguments,
// a file or standard input, once or -n times.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/tools/internal/msgfmt"
	"github.com/msgbus/msgbus/tools/internal/toolflags"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "msgsend:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	shared := toolflags.Shared{
		Channel:    "publish to `CHANNEL` (required), e.g. news or news/sport",
		Type:       "the message's media `TYPE` (Content-Type); default: from the file name or the content",
		Count:      "publish the message `N` times",
		CountValue: 1,
		JSON:       "print each publish's result (id, channel, type, size, subscribers) as a JSON line on stdout",
	}
	return &cli.App{
		Name:      "msgsend",
		Usage:     "publish a message to a msgbus channel",
		UsageText: "msgsend -c CHANNEL [-t TYPE] [-n COUNT] [--json] [-u URL] [-f FILE | --empty | MESSAGE...]",
		Description: "The message is the arguments joined by spaces, else the file given with -f, else standard input.\n" +
			"Its type is -t, else the file name's extension, else inferred from the content: a JSON object or array\n" +
			"is application/json; a format known by its first bytes (PNG, JPEG, GIF, PDF, HTML, ...) is that type;\n" +
			"UTF-8 text is text/plain; charset=utf-8; anything else is application/octet-stream.\n" +
			"An empty message is refused unless --empty asks for one.\n" +
			"On success it says what it published on stderr (nothing with -q), or with --json one JSON line per\n" +
			"publish on stdout: {\"id\",\"channel\",\"type\",\"size\",\"subscribers\"}. --json is only about that output;\n" +
			"the message itself is never changed.\n\n" +
			"   msgsend -c news 'hello, world'\n" +
			"   msgsend -c photos -f cat.jpg\n" +
			"   echo '{\"temp\": 21.5}' | msgsend -c sensors/kitchen --json\n" +
			"   msgsend -c ping -n 10 --empty\n" +
			"   date | msgsend -u http://bus.example:8888 -s hunter2 --user alice -c clock",
		HideHelpCommand: true,
		Flags: shared.Flags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "send the content of `FILE` (- is standard input)"},
			&cli.BoolFlag{Name: "empty", Usage: "send an empty message (no arguments, file or input)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing on success"},
		),
		Action: run,
	}
}

// result is what --json prints of one publish.
type result struct {
	ID          string `json:"id"`
	Channel     string `json:"channel"`
	Type        string `json:"type"`
	Size        int    `json:"size"`
	Subscribers int    `json:"subscribers"`
}

func run(c *cli.Context) error {
	channel := c.String(toolflags.ChannelName)
	if channel == "" {
		return errors.New("name a channel with -c, as in msgsend -c news hello; see msgsend --help")
	}
	count := c.Int(toolflags.CountName)
	if count < 1 {
		return fmt.Errorf("-n %d: send the message at least once", count)
	}
	body, typ, err := message(c)
	if err != nil {
		return err
	}
	if t := c.String(toolflags.TypeName); t != "" {
		typ = t
	}
	cl, err := toolflags.Client(c, client.Config{})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := toolflags.SignalContext()
	defer stop()

	asJSON := c.Bool(toolflags.JSONName)
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	var first, last client.Published
	deliveries := 0
	for i := range count {
		p, err := cl.Publish(ctx, channel, typ, body)
		if err != nil {
			if i > 0 {
				return fmt.Errorf("published %d of %d, then: %w", i, count, err)
			}
			return err
		}
		if i == 0 {
			first = p
		}
		last = p
		deliveries += p.Subscribers
		if asJSON {
			r := result{ID: p.ID, Channel: channel, Type: typ, Size: len(body), Subscribers: p.Subscribers}
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	}
	if asJSON || c.Bool("quiet") {
		return nil
	}
	if count == 1 {
		fmt.Fprintf(os.Stderr, "msgsend: published %s of %s to %s as id %s, reaching %s\n",
			msgfmt.Count(len(body), "byte"), typ, channel, first.ID, msgfmt.Count(first.Subscribers, "subscriber"))
	} else {
		fmt.Fprintf(os.Stderr, "msgsend: published %s of %s each, of %s, to %s as ids %s to %s, %s in all\n",
			msgfmt.Count(count, "message"), msgfmt.Count(len(body), "byte"), typ, channel, first.ID, last.ID,
			msgfmt.Count(deliveries, "delivery"))
	}
	return nil
}

// message returns the body to send and the type it suggests.
func message(c *cli.Context) ([]byte, string, error) {
	file := c.String("file")
	if c.Bool("empty") {
		if c.NArg() > 0 || file != "" {
			return nil, "", errors.New("--empty sends an empty message: give no message, -f or input with it")
		}
		return []byte{}, msgfmt.TypeText, nil
	}
	var b []byte
	var err error
	switch {
	case c.NArg() > 0:
		if file != "" {
			return nil, "", errors.New("give the message as arguments or with -f, not both")
		}
		b = []byte(strings.Join(c.Args().Slice(), " "))
	case file == "" || file == "-":
		if toolflags.IsTerminal(os.Stdin) {
			fmt.Fprintln(os.Stderr, "msgsend: reading the message from the terminal; end it with Ctrl-D (see msgsend --help)")
		}
		b, err = io.ReadAll(os.Stdin)
	default:
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, "", err
	}
	if len(b) == 0 {
		from := "standard input"
		switch {
		case c.NArg() > 0:
			from = "the arguments"
		case file != "" && file != "-":
			from = file
		}
		return nil, "", fmt.Errorf("the message is empty (%s held nothing): nothing sent; "+
			"to send an empty message, use --empty", from)
	}
	if file != "" && file != "-" {
		if typ := mime.TypeByExtension(filepath.Ext(file)); typ != "" {
			return b, typ, nil
		}
	}
	return b, msgfmt.InferType(b), nil
}
