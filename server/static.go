package server

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/app"
)

// openWebRoot serves dir at every path outside the bus. The files are read
// through an os.Root, which refuses any path or symlink that leads outside
// dir, so neither "/../" nor a symlink can escape it whatever fasthttp makes
// of the path; and through regularFS, which serves regular files and folders
// only (PROTOCOL.md §5).
func (s *Server) openWebRoot(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("server: web root (-d): %w", err)
	}
	s.root = root
	s.static = s.fileHandler(regularFS{root})
	return nil
}

// serveExampleApp serves the embedded example app (development mode).
func (s *Server) serveExampleApp() {
	s.static = s.fileHandler(app.Files())
}

// fileHandler serves the files of fsys with fasthttp's file server: index.html
// for folders, Content-Type from the extension, byte ranges. A folder asked
// for without its final slash is redirected relatively (see
// relativeFolderRedirect). Its cache cleaner stops on Shutdown.
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
	serve := h.NewRequestHandler()
	return func(ctx *fasthttp.RequestCtx) {
		serve(ctx)
		relativeFolderRedirect(ctx)
	}
}

// relativeFolderRedirect rewrites the Location of fasthttp's one redirect,
// GET /a/docs → /a/docs/, which fasthttp builds as an absolute URL from the
// Host header (an open redirect: "Host: evil.example" sent the client to
// http://evil.example/a/docs/). The new Location is "./docs/", relative to
// the URL the client asked for: it names no host, and the "./" keeps a
// segment holding ":" from reading as a scheme.
func relativeFolderRedirect(ctx *fasthttp.RequestCtx) {
	if code := ctx.Response.StatusCode(); code < 300 || code > 399 {
		return
	}
	if len(ctx.Response.Header.Peek(fasthttp.HeaderLocation)) == 0 {
		return
	}
	path := ctx.Path()
	last := path[bytes.LastIndexByte(path, '/')+1:]
	ctx.Response.Header.Set(fasthttp.HeaderLocation, "./"+url.PathEscape(string(last))+"/")
}

// regularFS is the web root as fasthttp's file server reads it: only
// regular files and folders open; a FIFO, device, socket or anything else
// is "not found", so fasthttp answers 404 without ever blocking on it (an
// open of a FIFO waits for a writer; 10,000 such GETs exhausted the
// process's threads).
//
// Open checks the mode before opening, so a device is normally never
// opened at all, and again on the opened file, because the name can be
// swapped for something else in between. The open itself is non-blocking
// (O_NONBLOCK: a FIFO opens at once; O_NOCTTY: a terminal does not become
// ours), so a swap costs an open and a close, never a blocked thread.
type regularFS struct{ root *os.Root }

// openFlags opens without blocking where the system has FIFOs and devices.
var openFlags = func() int {
	if runtime.GOOS == "windows" {
		return os.O_RDONLY
	}
	return os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY
}()

func (r regularFS) Open(name string) (fs.File, error) {
	// The os.Root's own fs.FS checks name as every fs.FS must, and follows
	// symlinks only within the root.
	fi, err := fs.Stat(r.root.FS(), name)
	if err != nil {
		return nil, err
	}
	if !servable(fi.Mode()) {
		return nil, notRegular(name)
	}
	f, err := r.root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err != nil || !servable(fi.Mode()) {
		f.Close()
		return nil, notRegular(name)
	}
	return f, nil
}

// servable reports whether a file of mode m may be served: a regular file,
// or a folder (for its index.html).
func servable(m fs.FileMode) bool {
	return m.IsRegular() || m.IsDir()
}

// notRegular is Open's error for a file it refuses to serve. It wraps
// fs.ErrNotExist, so fasthttp answers 404 as for a missing file and looks
// for the next index name.
func notRegular(name string) error {
	return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file: %w", fs.ErrNotExist)}
}
