package consul

import (
	"strconv"
	"testing"

	"github.com/leasehold-go/leasehold/elector"
)

// parseVersion accepts exactly the versions version writes: positive
// decimals without sign, spaces or leading zeros.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"", "0", "1", "05", "+5", "-1", " 5", "5 ", "18446744073709551615", "18446744073709551616", "1e3", "0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, ok := parseVersion(elector.Version(s))
		if !ok {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 && strconv.FormatUint(n, 10) == s {
				t.Fatalf("parseVersion(%q) refused a ModifyIndex", s)
			}
			return
		}
		if i == 0 || string(version(i)) != s {
			t.Fatalf("parseVersion(%q) = %d, which version writes %q", s, i, version(i))
		}
	})
}
