// Package toolflags holds the flags the msgbus tools share, so that the same
// thing has the same name in each: -u URL, -c CHANNEL, -t TYPE, -n COUNT,
// --json, --user NAME, -s SECRET and --token TOKEN. Every tool has all eight
// (Shared.Flags); what -c, -t, -n and --json mean to one tool is in its own
// words.
package toolflags

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
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

// Token is a token (a JWT) for a server run with --token-secret or
// --token-key, sent as Authorization: Bearer. It excludes --user and -s.
var Token = &cli.StringFlag{Name: "token", EnvVars: []string{"MSGBUS_TOKEN"},
	Usage: "send `TOKEN` (a JWT) as Authorization: Bearer; its sub is the From of what you publish (not with --user, -s)"}

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
// them (-u, -c, -t, -n, --json, --user, -s, --token), followed by extra.
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
		Token,
	}, extra...)
}

// Client builds the client from -u, --user, -s and --token. Surrounding
// space is trimmed from the token, so one read from a file with its
// newline works.
func Client(c *cli.Context, cfg client.Config) (*client.Client, error) {
	cfg.URL = c.String(URL.Name)
	cfg.User, cfg.Password = c.String(User.Name), c.String(Secret.Name)
	cfg.Token = strings.TrimSpace(c.String(Token.Name))
	if cfg.Token != "" && (cfg.User != "" || cfg.Password != "") {
		return nil, errors.New("--token and --user or -s are both given (perhaps from $MSGBUS_TOKEN, " +
			"$MSGBUS_USER or $MSGBUS_SECRET): a request carries one of them; give one")
	}
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
