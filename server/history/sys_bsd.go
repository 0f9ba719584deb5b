//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package history

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable (these systems have no fdatasync the
// standard library reaches; f.Sync is fsync, F_FULLFSYNC on darwin).
func datasync(f *os.File) error { return f.Sync() }

// preallocate does nothing here: the file grows as it is written.
func preallocate(*os.File, int64) error { return nil }

// lockFile takes an exclusive lock on f without waiting.
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// syncDir makes the creation and removal of dir's files durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
