package main

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The regular expressions the loops replace are their specification.
var (
	lockNameSpec = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	hostNameSpec = regexp.MustCompile(`^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.?$`)
)

func TestNameChecksMatchTheirSpec(t *testing.T) {
	fixed := []string{"", "a", "A", "-", ".", "a.", "a..b", ".a", "a-", "-a", "a-b", "a.b.", "a.b..",
		"web", "web-1.prod", "Web", "localhost", "127.0.0.1", "my_host", "a b",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 63) + "." + strings.Repeat("b", 63),
		strings.Repeat("a", 253), strings.Repeat("a", 254), "a" + strings.Repeat(".", 251) + "a"}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab0Z-._"
	var cases []string
	cases = append(cases, fixed...)
	for range 20000 {
		n := rng.IntN(12)
		if rng.IntN(10) == 0 {
			n = 55 + rng.IntN(210) // around the length limits
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
			if n > 20 && rng.IntN(4) > 0 {
				b[i] = 'a' // long names mostly valid, so the limits are reached
			}
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := validLockName(s), lockNameSpec.MatchString(s); got != want {
			t.Errorf("validLockName(%q) = %v, want %v", s, got, want)
		}
		if got, want := validHostName(s), hostNameSpec.MatchString(s); got != want {
			t.Errorf("validHostName(%q) = %v, want %v", s, got, want)
		}
	}
}
