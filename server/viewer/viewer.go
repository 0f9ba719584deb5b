// Package viewer holds the page msgbus serves for a browser navigation to
// /msgbus/<channel> (server/PROTOCOL.md §3): it subscribes to the same URL over
// Server-Sent Events, with the JSON envelope (?envelope=json), and shows the
// newest message in place, a log, and a live load dashboard for test-pub's
// stamped messages. It links the pages' shared stylesheet (/_msgbus/ui.css,
// same origin) and inlines its own few rules and its script, so it loads
// nothing from elsewhere, and a Content-Security-Policy lets no other
// script run on it.
package viewer

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"strings"
)

var (
	//go:embed viewer.html
	html string
	//go:embed viewer.css
	css string
	//go:embed viewer.js
	js string
)

// Page is the viewer, one HTML document with its style and script inline.
var Page = []byte(strings.NewReplacer(
	"<!--STYLE-->", "<style>"+css+"</style>",
	"<!--SCRIPT-->", "<script>"+js+"</script>",
).Replace(html))

// CSP is the Content-Security-Policy to serve Page with: only the page's own
// script runs (an HTML message, shown in a sandboxed iframe, runs none
// either); it connects only to its own origin. Styles and images stay open
// so an HTML message looks as its author meant.
var CSP = "default-src 'self'; script-src '" + hash(js) + "'; style-src 'self' 'unsafe-inline'; " +
	"img-src * data: blob:; frame-src 'self' blob: data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'"

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}
