package server

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/app"
)

// openWebRoot serves dir at every path outside the bus. The files are read
// through an os.Root, which refuses any path or symlink that leads outside
// dir, so neither "/../" nor a symlink can escape it whatever fasthttp makes
// of the path.
func (s *Server) openWebRoot(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("server: web root (-d): %w", err)
	}
	s.root = root
	s.static = s.fileHandler(root.FS())
	return nil
}

// serveExampleApp serves the embedded example app (development mode).
func (s *Server) serveExampleApp() {
	s.static = s.fileHandler(app.Files())
}

// fileHandler serves the files of fsys with fasthttp's file server: index.html
// for folders, Content-Type from the extension, byte ranges. Its cache
// cleaner stops on Shutdown.
func (s *Server) fileHandler(fsys fs.FS) fasthttp.RequestHandler {
	s.staticStop = make(chan struct{})
	h := &fasthttp.FS{
		FS:              fsys,
		IndexNames:      []string{"index.html"},
		AcceptByteRange: true,
		CleanStop:       s.staticStop,
		PathNotFound: func(ctx *fasthttp.RequestCtx) {
			fail(ctx, fasthttp.StatusNotFound, "not found: "+string(ctx.Path()))
		},
	}
	return h.NewRequestHandler()
}
