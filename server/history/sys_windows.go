package history

import (
	"os"

	"golang.org/x/sys/windows"
)

// datasync makes f's data durable (FlushFileBuffers).
func datasync(f *os.File) error { return f.Sync() }

// preallocate does nothing here: the file grows as it is written.
func preallocate(*os.File, int64) error { return nil }

// lockFile takes an exclusive lock on f without waiting.
func lockFile(f *os.File) error {
	var ol windows.Overlapped
	return windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

// syncDir does nothing: Windows cannot open a directory to flush it, and
// NTFS journals the creation and removal of files itself.
func syncDir(string) error { return nil }
