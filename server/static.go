package server

import (
	"fmt"
	"os"

	"github.com/valyala/fasthttp"
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
	s.staticStop = make(chan struct{})
	fs := &fasthttp.FS{
		FS:              root.FS(),
		IndexNames:      []string{"index.html"},
		AcceptByteRange: true,
		CleanStop:       s.staticStop,
		PathNotFound: func(ctx *fasthttp.RequestCtx) {
			fail(ctx, fasthttp.StatusNotFound, "not found: "+string(ctx.Path()))
		},
	}
	s.static = fs.NewRequestHandler()
	return nil
}
