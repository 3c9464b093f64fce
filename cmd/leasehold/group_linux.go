//go:build linux

package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes leasehold a child subreaper: if the guard dies, the
// processes of the command's group that lose their parent are reparented to
// leasehold, which can then reap them and know they are gone, instead of to
// init, which on some machines reaps slowly.
func becomeSubreaper() {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// groupMembers counts the live processes (zombies do not count) whose
// process group is pg, from /proc. Without /proc it asks kill(2), which
// also counts zombies (1: some).
func groupMembers(pg int) int {
	// No process at all in the group, zombies included: the common case
	// once the guard has reaped everything, answered without reading
	// every process's stat.
	if errors.Is(syscall.Kill(-pg, 0), syscall.ESRCH) {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 1
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 3 {
			continue
		}
		if state := f[0]; len(state) == 1 && (state[0] == 'Z' || state[0] == 'X') {
			continue
		}
		if g, err := strconv.Atoi(string(f[2])); err == nil && g == pg {
			n++
		}
	}
	return n
}

// groupGone reports whether no live process is left in group pg.
func groupGone(pg int) bool { return groupMembers(pg) == 0 }

// awaitGroup kills process group pg and returns once none of its processes
// runs any more, reaping those reparented to leasehold. It does not give up:
// the lock must not be released while one of them may still run, and
// SIGKILL ends every process but one stuck in the kernel.
func awaitGroup(pg int, log *slog.Logger) {
	warned := time.Now()
	for {
		syscall.Kill(-pg, syscall.SIGKILL)
		for {
			var ws syscall.WaitStatus
			if p, err := syscall.Wait4(-pg, &ws, syscall.WNOHANG, nil); p <= 0 || err != nil {
				break
			}
		}
		if groupGone(pg) {
			return
		}
		if time.Since(warned) > 5*time.Second {
			log.Error("processes of the command's group survive SIGKILL; not releasing the lock while they run", "group", pg)
			warned = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
}
