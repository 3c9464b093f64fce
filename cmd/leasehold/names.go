package main

// The name checks are loops, not regular expressions: a package-level
// regexp is compiled when the program starts, whatever the command, and a
// bounded repetition such as {0,251} compiles to a program of hundreds of
// instructions (most of the main package's initialisation, once).

// alnum reports whether c is a lower-case letter or a digit.
func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validLockName reports whether s is a lock name valid everywhere: a
// Kubernetes object name, an etcd key suffix, a Consul key segment. That
// is 1 to 253 of a-z, 0-9, '-' and '.', beginning and ending with a letter
// or a digit.
func validLockName(s string) bool {
	if s == "" || len(s) > 253 || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validHostName reports whether s is a DNS name: dot-separated labels of 1
// to 63 letters, digits and '-', each beginning and ending with a letter
// or a digit, optionally ending with a dot.
func validHostName(s string) bool {
	if len(s) > 1 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if s == "" {
		return false
	}
	label := 0 // the length of the label so far
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := alnum(c) || c >= 'A' && c <= 'Z'
		switch {
		case c == '.':
			if label == 0 || s[i-1] == '-' {
				return false
			}
			label = 0
		case letter || c == '-' && label > 0:
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0 && s[len(s)-1] != '-'
}
