// Command msgsend publishes one message to a msgbus channel: the arguments,
// a file or standard input.
package main

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/tools/internal/toolflags"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "msgsend:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:      "msgsend",
		Usage:     "publish a message to a msgbus channel",
		UsageText: "msgsend -c CHANNEL [-t TYPE] [-u URL] [-f FILE | MESSAGE...]",
		Description: "The message is the arguments joined by spaces, else the file given with -f, else standard input.\n" +
			"Its type is -t, else text/plain for arguments, else guessed from the file name or the content.\n\n" +
			"   msgsend -c news 'hello, world'\n" +
			"   msgsend -c photos -f cat.jpg\n" +
			"   date | msgsend -u http://bus.example:8888 -s hunter2 --user alice -c clock",
		HideHelpCommand: true,
		Flags: []cli.Flag{
			toolflags.URL,
			toolflags.Channel("", "publish to `CHANNEL` (required), e.g. news or news/sport"),
			&cli.StringFlag{Name: "type", Aliases: []string{"t"}, Usage: "the message's media `TYPE` (Content-Type)"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "send the content of `FILE` (- is standard input)"},
			toolflags.User,
			toolflags.Secret,
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing on success"},
		},
		Action: run,
	}
}

func run(c *cli.Context) error {
	channel := c.String("channel")
	if channel == "" {
		return errors.New("name a channel with -c, as in msgsend -c news hello; see msgsend --help")
	}
	body, typ, err := message(c)
	if err != nil {
		return err
	}
	if t := c.String("type"); t != "" {
		typ = t
	}
	cl, err := toolflags.Client(c, client.Config{})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := toolflags.SignalContext()
	defer stop()
	p, err := cl.Publish(ctx, channel, typ, body)
	if err != nil {
		return err
	}
	if !c.Bool("quiet") {
		fmt.Fprintf(os.Stderr, "msgsend: published %d bytes of %s to %s as id %d, reaching %d subscribers\n",
			len(body), typ, channel, p.ID, p.Subscribers)
	}
	return nil
}

// message returns the body to send and the type it suggests.
func message(c *cli.Context) ([]byte, string, error) {
	file := c.String("file")
	if c.NArg() > 0 {
		if file != "" {
			return nil, "", errors.New("give the message as arguments or with -f, not both")
		}
		return []byte(strings.Join(c.Args().Slice(), " ")), "text/plain; charset=utf-8", nil
	}
	var b []byte
	var err error
	if file == "" || file == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, "", err
	}
	typ := mime.TypeByExtension(filepath.Ext(file))
	if typ == "" || file == "-" {
		typ = http.DetectContentType(b)
	}
	return b, typ, nil
}
