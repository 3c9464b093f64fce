package schedule

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNext(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	for _, tc := range []struct {
		spec string
		loc  *time.Location
		from string
		want string
	}{
		{"*/5 * * * *", nil, "2026-12-02T07:03:10Z", "2026-12-02T07:05:00Z"},
		{"*/5 * * * *", nil, "2026-12-02T07:05:00Z", "2026-12-02T07:10:00Z"},  // strictly after
		{"0 3 * * *", berlin, "2026-12-02T01:00:00Z", "2026-12-02T02:00:00Z"}, // 03:00 in Berlin (UTC+1)
		{"@hourly", nil, "2026-12-02T07:59:59Z", "2026-12-02T08:00:00Z"},
		// @every: multiples since the epoch, whoever asks and when.
		{"@every 30s", nil, "2026-12-02T07:03:10Z", "2026-12-02T07:03:30Z"},
		{"@every 30s", berlin, "2026-12-02T07:03:30Z", "2026-12-02T07:04:00Z"},
		{"@every 7s", nil, "1970-01-01T00:00:13Z", "1970-01-01T00:00:14Z"},
	} {
		s, err := Parse(tc.spec, tc.loc)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if got := s.Next(at(tc.from)); !got.Equal(at(tc.want)) {
			t.Errorf("%q in %v: Next(%s) = %v, want %s", tc.spec, tc.loc, tc.from, got.UTC(), tc.want)
		}
	}
}

func TestDue(t *testing.T) {
	s, err := Parse("@every 10s", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := at("2026-12-02T07:00:35Z")
	str := func(ts []time.Time) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.UTC().Format("15:04:05"))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		last    string
		catchUp time.Duration
		limit   int
		want    string
	}{
		{"", 10 * time.Second, 0, "07:00:30"},                         // one period back: the latest slot
		{"", 30 * time.Second, 0, "07:00:10 07:00:20 07:00:30"},       // the window includes its start
		{"2026-12-02T07:00:20Z", time.Minute, 0, "07:00:30"},          // after the last claimed
		{"2026-12-02T07:00:30Z", time.Minute, 0, ""},                  // nothing new
		{"2026-12-02T06:00:00Z", time.Minute, 2, "07:00:20 07:00:30"}, // the latest two
		{"2026-12-02T07:10:00Z", time.Minute, 0, ""},                  // a last slot in the future (a fast clock claimed it)
		{"", 0, 0, ""}, // no catch-up, not on a slot
	} {
		var last time.Time
		if tc.last != "" {
			last = at(tc.last)
		}
		if got := str(s.Due(last, now, tc.catchUp, tc.limit)); got != tc.want {
			t.Errorf("Due(last %q, catch-up %v, limit %d) = %q, want %q", tc.last, tc.catchUp, tc.limit, got, tc.want)
		}
	}
	// Exactly on a slot, with no catch-up, that slot is due.
	if got := str(s.Due(time.Time{}, at("2026-12-02T07:00:40Z"), 0, 0)); got != "07:00:40" {
		t.Errorf("on the slot: %q", got)
	}
}

func TestPeriod(t *testing.T) {
	for spec, want := range map[string]time.Duration{"@every 45s": 45 * time.Second, "*/5 * * * *": 5 * time.Minute, "@daily": 24 * time.Hour} {
		s, err := Parse(spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Period(at("2026-12-02T07:03:10Z")); got != want {
			t.Errorf("%q: period %v, want %v", spec, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"":                       "empty schedule",
		"* * *":                  "expected exactly 5 fields",
		"@every soon":            `"soon" is not a duration`,
		"@every 1500ms":          "whole number of seconds",
		"@every 0s":              "at least 1s",
		"61 * * * *":             "above maximum",
		"CRON_TZ=UTC * * * * *":  "--timezone",
		"@fortnightly":           "unrecognized descriptor",
		strings.Repeat("*", 300): "longer than",
	} {
		if _, err := Parse(spec, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", spec, err, want)
		}
	}
}

// A schedule is user input: any text either parses into a schedule whose
// slots move forward and whose Due lists stay in their window, or is
// refused with an error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "@every 30s", "0 0 29 2 *", "@yearly", "1-5/2 3,4 * JAN-MAR MON", "@every 1h30m"} {
		f.Add(s)
	}
	now := at("2026-12-02T07:00:00Z")
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec, nil)
		if err != nil {
			if s != nil {
				t.Fatal("a schedule and an error")
			}
			return
		}
		n := s.Next(now)
		if !n.IsZero() && !n.After(now) {
			t.Fatalf("%q: Next(%v) = %v, not after", spec, now, n)
		}
		due := s.Due(now.Add(-time.Hour), now, 24*time.Hour, 50)
		for i, d := range due {
			if !d.After(now.Add(-time.Hour)) || d.After(now) || (i > 0 && !d.After(due[i-1])) {
				t.Fatalf("%q: due %v out of order or window", spec, due)
			}
		}
	})
}

// The last claimed slot is never due again, also when the catch-up
// window starts exactly at it.
func TestDueNotTheLastClaimed(t *testing.T) {
	s, err := Parse("@every 5s", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := at("2026-12-02T07:00:30Z")
	for _, last := range []string{"2026-12-02T07:00:25Z", "2026-12-02T07:00:30Z"} {
		l := at(last)
		for _, d := range s.Due(l, now, now.Sub(l), 0) {
			if !d.After(l) {
				t.Errorf("Due(last %s, window from it) = %v: the last claimed slot again", last, d)
			}
		}
	}
	if got := s.Due(at("2026-12-02T07:00:25Z"), now, 5*time.Second, 0); len(got) != 1 || !got[0].Equal(now) {
		t.Errorf("Due = %v, want only 07:00:30", got)
	}
}
