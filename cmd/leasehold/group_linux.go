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

// procStat is one process as /proc/<pid>/stat shows it.
type procStat struct {
	pid, ppid, pgrp int
	state           byte
}

// live reports whether the process still runs (a zombie does not).
func (p procStat) live() bool { return p.state != 'Z' && p.state != 'X' }

// parseStat reads the fields of /proc/<pid>/stat that procStat keeps.
func parseStat(pid int, b []byte) (procStat, bool) {
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0]}, true
}

// readProc reads one process's stat; false if it is gone.
func readProc(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseStat(pid, b)
}

// procs lists every process of /proc (nil, err without /proc).
func procs() ([]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	ps := make([]procStat, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok { // else gone meanwhile
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// descendants returns the processes below root in the process tree,
// zombies included, whatever their session or process group: moving to
// another group or session (setsid, setpgid) does not change a process's
// parent, and an orphan is reparented to the nearest child subreaper above
// it, so below a subreaper its whole subtree stays in view.
func descendants(ps []procStat, root int) []procStat {
	children := make(map[int][]int, len(ps))
	byPid := make(map[int]procStat, len(ps))
	for _, p := range ps {
		children[p.ppid] = append(children[p.ppid], p.pid)
		byPid[p.pid] = p
	}
	var out []procStat
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if seen[c] {
				continue
			}
			seen[c] = true
			out = append(out, byPid[c])
			queue = append(queue, c)
		}
	}
	return out
}

// liveDescendants is descendants(root) without the zombies, read now.
func liveDescendants(root int) []procStat {
	ps, err := procs()
	if err != nil {
		return nil
	}
	var out []procStat
	for _, p := range descendants(ps, root) {
		if p.live() {
			out = append(out, p)
		}
	}
	return out
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
	ps, err := procs()
	if err != nil {
		return 1
	}
	n := 0
	for _, p := range ps {
		if p.live() && p.pgrp == pg {
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

// killTree kills every process below root (not root itself), in any
// process group or session, and returns once none of them runs any more:
// the pids it signalled, for reaping once they are leasehold's children.
// root may be stopped (SIGSTOP, a frozen cgroup): it need not answer, and
// what it does not reap waits as zombies below it. Like awaitGroup it does
// not give up.
func killTree(root int, log *slog.Logger) (killed []int) {
	seen := map[int]bool{}
	warned := time.Now()
	for {
		live := liveDescendants(root)
		if len(live) == 0 {
			return killed
		}
		for _, p := range live {
			syscall.Kill(p.pid, syscall.SIGKILL)
			if !seen[p.pid] {
				seen[p.pid] = true
				killed = append(killed, p.pid)
			}
		}
		if time.Since(warned) > 5*time.Second {
			log.Error("processes of the command survive SIGKILL; not releasing the lock while they run", "below", root)
			warned = time.Now()
		}
		time.Sleep(time.Millisecond)
	}
}

// hasEnv reports whether the environment pid was started with holds every
// entry of mark.
func hasEnv(pid int, mark []string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || len(b) == 0 {
		return false
	}
	found := 0
	for _, e := range bytes.Split(b, []byte{0}) {
		for _, m := range mark {
			if string(e) == m {
				found++
			}
		}
	}
	return found >= len(mark)
}

// strays lists the command's processes that lost their guard: leasehold is
// a child subreaper, so a process whose guard (and parent) died is
// reparented to leasehold. They are told from leasehold's other children
// (the guards, a Kubernetes credential plugin) by their environment: the
// command's own entries (mark: its LEASEHOLD_TERM, LEASEHOLD_LOCK, ...),
// which they inherited; what they started since goes with them, whatever
// its environment. Zombies are listed too, for reaping.
func strays(mark []string) []procStat {
	if len(mark) == 0 {
		return nil
	}
	ps, err := procs()
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []procStat
	for _, p := range ps {
		if p.ppid != self || !p.live() || !hasEnv(p.pid, mark) {
			continue
		}
		out = append(out, p)
		out = append(out, descendants(ps, p.pid)...)
	}
	return out
}

// awaitStrays kills the command's processes reparented to leasehold (see
// strays) and returns once none of them runs, reaping them and the pids
// of reap (processes killed earlier that leasehold may have inherited).
// It does not give up.
func awaitStrays(mark []string, reap []int, log *slog.Logger) {
	pending := map[int]bool{}
	for _, p := range reap {
		pending[p] = true
	}
	warned := time.Now()
	for {
		running := 0
		for _, p := range strays(mark) {
			pending[p.pid] = true
			if p.live() {
				running++
				syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		// Once none runs, every parent among them has exited, so the
		// zombies left are leasehold's: the last pass reaps them all.
		for pid := range pending {
			var ws syscall.WaitStatus
			if p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); p == pid {
				delete(pending, pid)
			}
		}
		if running == 0 {
			return
		}
		if time.Since(warned) > 5*time.Second {
			log.Error("processes the command left behind survive SIGKILL; not releasing the lock while they run")
			warned = time.Now()
		}
		time.Sleep(time.Millisecond)
	}
}

// stoppedProc reports whether pid is stopped (SIGSTOP, a frozen cgroup
// shows as D, which SIGKILL ends too) or traced.
func stoppedProc(pid int) bool {
	p, ok := readProc(pid)
	return ok && (p.state == 'T' || p.state == 't')
}
