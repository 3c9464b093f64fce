// Package smallfile reads the small files leasehold is pointed at — config
// files, secrets, TLS certificates and keys — safely: only regular files of
// at most MaxSize bytes, without blocking on a FIFO or reading a device
// forever.
package smallfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// MaxSize bounds every file Read reads: 1 MiB.
const MaxSize = 1 << 20

// ErrTooLarge is Read's error for a file larger than MaxSize.
var ErrTooLarge = errors.New("larger than 1 MiB")

// Read reads a regular file of at most MaxSize bytes. It opens with
// O_NONBLOCK, so that a FIFO cannot block the open, and refuses anything but
// a regular file (a FIFO, a device like /dev/zero, a directory) before
// reading a byte; the read itself stops past the limit. Errors are the bare
// reason ("not a regular file (a directory)", "no such file or directory"),
// for the caller to prefix with the flag or key and the path.
func Read(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, bare(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, bare(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", kind(fi.Mode()))
	}
	if fi.Size() > MaxSize {
		return nil, ErrTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, bare(err)
	}
	if len(b) > MaxSize { // it grew after the fstat
		return nil, ErrTooLarge
	}
	return b, nil
}

// bare drops the operation and path from a *PathError: the caller names the
// path already.
func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}
