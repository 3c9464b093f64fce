package backendtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Log is a slog.Handler that keeps every line a client logs, so that a
// backend's test can check what the backend warned about (Lines) and show
// everything else it said when the test fails (String). Its zero value is
// ready to use.
type Log struct {
	mu    sync.Mutex
	lines []logLine
	attrs []slog.Attr
	root  *Log // the Log the lines go to; nil: this one
}

type logLine struct {
	at    time.Time
	level slog.Level
	text  string
}

// Logger returns a logger that writes to l.
func (l *Log) Logger() *slog.Logger { return slog.New(l) }

func (l *Log) target() *Log {
	if l.root != nil {
		return l.root
	}
	return l
}

// Enabled reports true for every level: the test decides what it reads.
func (l *Log) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs returns a handler that adds as to every line, into the same Log.
func (l *Log) WithAttrs(as []slog.Attr) slog.Handler {
	return &Log{attrs: append(append([]slog.Attr(nil), l.attrs...), as...), root: l.target()}
}

// WithGroup returns l: groups are not kept apart.
func (l *Log) WithGroup(string) slog.Handler { return l }

// Handle keeps the record as one line: the message and its attributes.
func (l *Log) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range l.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	t := l.target()
	t.mu.Lock()
	t.lines = append(t.lines, logLine{at: r.Time, level: r.Level, text: b.String()})
	t.mu.Unlock()
	return nil
}

// Lines returns the lines logged at level whose text contains substr, in
// the order they were logged.
func (l *Log) Lines(level slog.Level, substr string) []string {
	t := l.target()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, ln := range t.lines {
		if ln.level == level && strings.Contains(ln.text, substr) {
			out = append(out, ln.text)
		}
	}
	return out
}

// String returns every line, one per line, with its time and level: what a
// failing test prints.
func (l *Log) String() string {
	t := l.target()
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for _, ln := range t.lines {
		fmt.Fprintf(&b, "%s %s %s\n", ln.at.Format("15:04:05.000"), ln.level, ln.text)
	}
	return b.String()
}
