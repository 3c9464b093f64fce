package main

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// lineReader serves the lines of b the way the guard reads its socket.
func lineReader(b []byte) (first string, next func() (string, bool)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	next = func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	first, _ = next()
	return first, next
}

func TestGrantRoundTrip(t *testing.T) {
	env := []string{"A=1", "LEASEHOLD_TERM=42", "MULTI=line one\nline two", "QUOTE=\"x\" \\ y", "EMPTY=", "UTF=héllo"}
	var b bytes.Buffer
	if err := writeGrant(bufio.NewWriter(&b), 123456789, env); err != nil {
		t.Fatal(err)
	}
	first, next := lineReader(b.Bytes())
	d, got, err := readGrant(first, next)
	if err != nil || d != 123456789 || strings.Join(got, "\x00") != strings.Join(env, "\x00") {
		t.Fatalf("readGrant = %d %q %v, want 123456789 %q", d, got, err, env)
	}
	if rest, more := next(); more {
		t.Fatalf("a line after the grant: %q", rest)
	}
}

func TestGrantRefusesMalformed(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"D 5\n", "is not a grant"},
		{"G 0 0\n", "not a positive monotonic time"},
		{"G -3 0\n", "not a positive monotonic time"},
		{"G x 0\n", "not a positive monotonic time"},
		{"G 5 -1\n", "not a number of environment entries"},
		{"G 5 99999999\n", "not a number of environment entries"},
		{"G 5 2\n\"A=1\"\n", "ended after 1 of 2"},
		{"G 5 1\nA=1\n", "is not a quoted NAME=value"},
		{"G 5 1\n\"novalue\"\n", "is not a quoted NAME=value"},
		{"G 5 1\n\"A=\\x00\"\n", "is not a quoted NAME=value"},
		{"G 5\n", "is not a grant"},
	} {
		first, next := lineReader([]byte(tc.in))
		_, _, err := readGrant(first, next)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("readGrant(%q) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// Whatever arrives on the socket, a grant is either refused or well formed:
// a positive deadline and entries that each hold a name and a value.
func FuzzReadGrant(f *testing.F) {
	f.Add([]byte("G 5 1\n\"A=1\"\n"))
	f.Add([]byte("G 9223372036854775807 0\n"))
	f.Add([]byte("G 5 3\n\"A=1\"\n\"B=\\n\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		first, next := lineReader(b)
		d, env, err := readGrant(first, next)
		if err != nil {
			return
		}
		if d <= 0 {
			t.Fatalf("accepted deadline %d", d)
		}
		for _, e := range env {
			if !strings.Contains(e, "=") || strings.IndexByte(e, 0) >= 0 {
				t.Fatalf("accepted entry %q", e)
			}
		}
		// What was accepted is written back the same.
		var w bytes.Buffer
		if err := writeGrant(bufio.NewWriter(&w), d, env); err != nil {
			t.Fatal(err)
		}
		f2, n2 := lineReader(w.Bytes())
		d2, env2, err := readGrant(f2, n2)
		if err != nil || d2 != d || strings.Join(env2, "\x00") != strings.Join(env, "\x00") {
			t.Fatalf("round trip: %d %q %v, want %d %q", d2, env2, err, d, env)
		}
	})
}

// The guard's lease rules: nothing starts on a passed deadline; a renewal
// moves the deadline only later, and not at all once stopping; a timer
// that fires before the deadline (a renewal raced with it) re-arms.
func TestGuardLease(t *testing.T) {
	var l guardLease
	if err := l.grant(100, 100); !errors.Is(err, errLeaseOver) {
		t.Fatalf("grant at its deadline: %v, want errLeaseOver", err)
	}
	if err := l.grant(100, 150); !errors.Is(err, errLeaseOver) {
		t.Fatalf("grant after its deadline: %v, want errLeaseOver", err)
	}
	if err := l.grant(100, 40); err != nil || l.left(40) != 60 {
		t.Fatalf("grant before its deadline: %v, left %v", err, l.left(40))
	}
	if l.renewed(90) || l.renewed(100) || l.deadline != 100 {
		t.Fatalf("an earlier or equal renewal moved the deadline to %d", l.deadline)
	}
	if !l.renewed(200) || l.deadline != 200 {
		t.Fatalf("a later renewal: deadline %d, want 200", l.deadline)
	}
	// The timer armed for 100 fires at 100, after the renewal to 200.
	if expired, rearm := l.fired(100); expired || rearm != 100*time.Nanosecond {
		t.Fatalf("fired before the deadline: expired %v, rearm %v; want re-armed for 100ns", expired, rearm)
	}
	if expired, _ := l.fired(200); !expired {
		t.Fatal("fired at the deadline: not expired")
	}
	l.stopping = true
	if l.renewed(300) || l.deadline != 200 {
		t.Fatalf("a renewal once stopping moved the deadline to %d", l.deadline)
	}
}
