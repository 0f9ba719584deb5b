// Package toolflags holds the flags the msgbus tools share, so that the same
// thing has the same name in each: -u URL, -c CHANNEL, -t TYPE, -n COUNT,
// --json, --user NAME and -s SECRET. Every tool has all seven (Shared.Flags);
// what -c, -t, -n and --json mean to one tool is in its own words.
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

// The names of the shared flags, for cli.Context lookups.
const (
	ChannelName = "channel"
	TypeName    = "type"
	CountName   = "count"
	JSONName    = "json"
)

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

// Shared says what the shared flags mean to one tool: each usage text, with
// its placeholder in backquotes as cli wants, and each default. An empty
// usage is a programming error: every tool has every shared flag.
type Shared struct {
	Channel      string // -c CHANNEL
	ChannelValue string // -c's default
	Type         string // -t TYPE
	TypeValue    string // -t's default
	Count        string // -n COUNT
	CountValue   int    // -n's default
	JSON         string // --json
}

// Flags returns the shared flags, in the order every tool's --help lists
// them (-u, -c, -t, -n, --json, --user, -s), followed by extra.
func (s Shared) Flags(extra ...cli.Flag) []cli.Flag {
	if s.Channel == "" || s.Type == "" || s.Count == "" || s.JSON == "" {
		panic("toolflags: every shared flag needs a usage text")
	}
	return append([]cli.Flag{
		URL,
		&cli.StringFlag{Name: ChannelName, Aliases: []string{"c"}, Value: s.ChannelValue, Usage: s.Channel},
		&cli.StringFlag{Name: TypeName, Aliases: []string{"t"}, Value: s.TypeValue, Usage: s.Type},
		&cli.IntFlag{Name: CountName, Aliases: []string{"n"}, Value: s.CountValue, Usage: s.Count},
		&cli.BoolFlag{Name: JSONName, Usage: s.JSON},
		User,
		Secret,
	}, extra...)
}

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

// IsTerminal reports whether f is a terminal (a character device), for
// live progress lines and for what may be written to a screen.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
