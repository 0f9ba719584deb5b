//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd && !windows

package history

import "os"

// datasync makes f's data durable.
func datasync(f *os.File) error { return f.Sync() }

// preallocate does nothing here: the file grows as it is written.
func preallocate(*os.File, int64) error { return nil }

// lockFile does nothing here: two processes on one store are not caught.
func lockFile(*os.File) error { return nil }

// syncDir makes the creation and removal of dir's files durable, where
// the system allows a directory to be synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	d.Sync() // not every system can
	return d.Close()
}
