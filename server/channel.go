package server

import (
	"errors"
	"github.com/msgbus/msgbus/server/message"
	"net/url"

	"github.com/msgbus/msgbus/server/wire"
)

// busPrefix is where the bus is routed: wire names channels by it too.
const busPrefix = wire.BusPrefix

var (
	errBadEscape = errors.New("channel name has an invalid percent-encoding")
	errNoChannel = errors.New("name a channel to publish to, as in /msgbus/news")
)

// parseChannel turns the raw (still escaped) path after a pattern prefix into
// a channel name: percent-decoded, then checked by message.CheckChannel. The
// empty string is the root; allowRoot says whether that is acceptable.
// Decoding happens here and not in fasthttp, which would resolve ".." and
// "//" silently instead of refusing them.
func parseChannel(raw string, allowRoot bool) (string, error) {
	name, err := url.PathUnescape(raw)
	if err != nil {
		return "", errBadEscape
	}
	if name == "" && raw == "" {
		if allowRoot {
			return "", nil
		}
		return "", errNoChannel
	}
	if err := message.CheckChannel(name); err != nil {
		return "", err
	}
	return name, nil
}
