// Package ui holds the one stylesheet that every msgbus page shares (the
// viewer, the example app, the chat demo), so they speak one visual language
// without a framework or a build step. The server serves it at Path on every
// listener, whatever the web root holds, so a page served from -d can link
// to it too.
package ui

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// Path is where the server serves the stylesheet.
const Path = "/_msgbus/ui.css"

//go:embed ui.css
var CSS []byte

// Serve answers a GET or HEAD of Path with the stylesheet.
func Serve(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-cache")
	ctx.SetContentType("text/css; charset=utf-8")
	ctx.SetBody(CSS)
}
