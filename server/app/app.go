// Package app holds the example app that msgbus serves at / in development
// mode: a page with Info, Bus, Pub/Sub and Push/Pull tabs to try every
// pattern against the running broker. The files are embedded in the binary;
// the page loads nothing from elsewhere.
package app

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Files returns the app's files, index.html at the top.
func Files() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded folder is there at build time
	}
	return sub
}
