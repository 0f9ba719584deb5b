// Package toolflags holds the flags the msgbus tools share, so that the same
// thing has the same name in each: -u URL, -c CHANNEL, -t TYPE, --user,
// -s SECRET, -n COUNT, --json.
package toolflags

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/msgbus/msgbus/client"
)

// DefaultURL is the server the tools talk to unless told otherwise.
const DefaultURL = "http://localhost:8888"

// URL is the server, -u.
var URL = &cli.StringFlag{Name: "url", Aliases: []string{"u"}, Value: DefaultURL, EnvVars: []string{"MSGBUS_URL"},
	Usage: "the msgbus server at `URL` (http or https; user:secret@ in it is Basic auth)"}

// User and Secret are Basic auth for a server run with -s SECRET.
var (
	User = &cli.StringFlag{Name: "user", EnvVars: []string{"MSGBUS_USER"},
		Usage: "Basic auth user `NAME`: what you publish carries it as From"}
	Secret = &cli.StringFlag{Name: "secret", Aliases: []string{"s"}, EnvVars: []string{"MSGBUS_SECRET"},
		Usage: "Basic auth password: the server's -s `SECRET`"}
)

// Channel returns the -c flag with a default.
func Channel(def, usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "channel", Aliases: []string{"c"}, Value: def, Usage: usage}
}

// Count is -n: how many messages.
func Count(usage string) *cli.IntFlag {
	return &cli.IntFlag{Name: "count", Aliases: []string{"n"}, Usage: usage}
}

// JSON is --json: the summary as one JSON object on stdout.
var JSON = &cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object on stdout, for machines"}

// Client builds the client from -u, --user and -s.
func Client(c *cli.Context, cfg client.Config) (*client.Client, error) {
	cfg.URL = c.String(URL.Name)
	cfg.User, cfg.Password = c.String(User.Name), c.String(Secret.Name)
	return client.New(cfg)
}

// SignalContext is cancelled by SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// IsTerminal reports whether f is a terminal, for live progress lines.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
