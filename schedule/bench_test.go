package schedule

import (
	"testing"
	"time"
)

// BenchmarkNext is Next's cost for a daily schedule in a zone with
// daylight saving time and a minutely one in UTC (not a CI assertion).
func BenchmarkNext(b *testing.B) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		spec string
		loc  *time.Location
	}{{"daily-berlin", "30 2 * * *", berlin}, {"minutely-utc", "* * * * *", time.UTC}, {"weekdays-berlin", "0 9 * * 1-5", berlin}} {
		s, err := Parse(c.spec, c.loc)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			t := at("2026-03-01T00:00:00Z")
			for b.Loop() {
				t = s.Next(t)
			}
		})
	}
}
