// Package console holds the operators' console (PROTOCOL.md §9): a live
// page, served on the admin listener, that shows the bus's channels and
// their subscribers, messages/s and deliveries/s over the last two
// minutes, every session grouped by user with buttons to log one out or
// all of a user's, and a form to publish as the server.
//
// The page is three embedded files (HTML, its stylesheet and its script:
// no framework, no build step) plus the pages' shared stylesheet, all
// served from the same origin; the script polls the admin API's JSON
// (/admin/channels, /admin/sessions) once a second while the tab is
// visible. It loads nothing from elsewhere, and its Content-Security-Policy
// lets it load and connect to nothing else.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/msgbus/msgbus/server/ui"
)

//go:embed index.html console.css console.js
var files embed.FS

// Paths the console answers, besides ui.Path: the page at / and at /console
// (and /console/), its assets under /console/.
const (
	PagePath   = "/console"
	ScriptPath = "/console/console.js"
	StylePath  = "/console/console.css"
)

// CSP is the Content-Security-Policy the page is served with: its own
// origin's script and styles only, requests to its own origin only, and
// no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// An asset is one file the handler serves.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body, contentType, `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("console: " + err.Error()) // embedded: cannot happen
	}
	return b
}

var (
	page   = newAsset(mustRead("index.html"), "text/html; charset=utf-8")
	assets = map[string]asset{
		"/":            page,
		PagePath:       page,
		PagePath + "/": page,
		ScriptPath:     newAsset(mustRead("console.js"), "text/javascript; charset=utf-8"),
		StylePath:      newAsset(mustRead("console.css"), "text/css; charset=utf-8"),
		ui.Path:        newAsset(ui.CSS, "text/css; charset=utf-8"),
	}
)

// Handler serves the console: GET (or HEAD) / and /console the page, its
// assets under /console/, and the shared stylesheet at ui.Path, with
// ETags so a reload costs a 304. Any other path is 404, any other method
// 405. It is meant for the admin listener's mux, under "GET /",
// "GET /console/" and "GET /_msgbus/ui.css"; it does no access control of
// its own, which is the listener's.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

// Public reports whether r asks for the console's page or one of its
// files, which the admin listener serves without its token (a browser
// opening a page cannot send one); the JSON API the page calls is not.
func Public(r *http.Request) bool {
	_, ok := assets[r.URL.Path]
	return ok && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}

func serve(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the console is read with GET", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.contentType == page.contentType {
		h.Set("Content-Security-Policy", CSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
