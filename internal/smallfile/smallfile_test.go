package smallfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	exact := filepath.Join(dir, "exact")
	big := filepath.Join(dir, "big")
	os.WriteFile(exact, []byte(strings.Repeat("x", MaxSize)), 0o600)
	os.WriteFile(big, []byte(strings.Repeat("x", MaxSize+1)), 0o600)
	if b, err := Read(exact); err != nil || len(b) != MaxSize {
		t.Fatalf("a file of exactly MaxSize: %d bytes, %v", len(b), err)
	}
	if _, err := Read(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a file of MaxSize+1: %v, want ErrTooLarge", err)
	}
	for path, want := range map[string]string{
		fifo:                       "not a regular file (a FIFO)",
		dir:                        "not a regular file (a directory)",
		"/dev/zero":                "not a regular file (a character device)",
		filepath.Join(dir, "none"): "no such file or directory",
	} {
		// The reason only: the caller names the path.
		if _, err := Read(path); err == nil || err.Error() != want {
			t.Errorf("Read(%s) = %v, want %q", path, err, want)
		}
	}
}
