package yamlx

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// doc parses data with Document, failing the test on an error.
func doc(t *testing.T, data string) *yaml.Node {
	t.Helper()
	n, err := Document([]byte(data))
	if err != nil {
		t.Fatalf("Document(%q): %v", data, err)
	}
	return n
}

// value returns the node under key in the top-level mapping of data.
func value(t *testing.T, data, key string) *yaml.Node {
	t.Helper()
	root := doc(t, data)
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return root.Content[i+1]
		}
	}
	t.Fatalf("no key %q in %q", key, data)
	return nil
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestDocument(t *testing.T) {
	for _, in := range []string{"", "   \n\n", "# only a comment\n", "---\n", "~\n", "null\n"} {
		n, err := Document([]byte(in))
		if err != nil || n.Kind != yaml.MappingNode || len(n.Content) != 0 || n.Line != 1 {
			t.Errorf("Document(%q) = %+v, %v; want an empty mapping at line 1", in, n, err)
		}
	}
	for in, want := range map[string]string{
		"- a\n- b\n":        "line 1: the file must be a mapping of keys",
		"\n\njust words\n":  "line 3: the file must be a mapping of keys",
		"a: [\n":            "not valid YAML: ",
		"a: 1\n\tb: 2\n":    "not valid YAML: ",
		"\x00\x01garbage":   "not valid YAML: ",
		"a: *nowhere\n":     "not valid YAML: ",
		"a: 1\n---\nb: 2\n": "", // only the first document counts
	} {
		n, err := Document([]byte(in))
		switch {
		case want == "":
			if err != nil || len(n.Content) != 2 || n.Content[0].Value != "a" {
				t.Errorf("Document(%q) = %v, want the first document", in, err)
			}
		case err == nil || !strings.HasPrefix(err.Error(), want):
			t.Errorf("Document(%q) = %v, want an error starting %q", in, err, want)
		}
	}
	n := doc(t, "a: 1\nb:\n  c: 2\n")
	if n.Kind != yaml.MappingNode || len(n.Content) != 4 || n.Content[2].Value != "b" || n.Content[3].Line != 3 {
		t.Fatalf("Document: %+v", n)
	}
}

func TestMapping(t *testing.T) {
	var p Parser
	var keys []string
	var lines []int
	p.Mapping(doc(t, "a: 1\nb: 2\nc:\n  d: 3\n"), "", func(key string, k, v *yaml.Node) {
		keys = append(keys, key)
		lines = append(lines, k.Line)
	})
	if p.Err != nil || !slices.Equal(keys, []string{"a", "b", "c"}) || !slices.Equal(lines, []int{1, 2, 3}) {
		t.Fatalf("keys %v at lines %v, err %v; want a, b, c at 1, 2, 3 in order", keys, lines, p.Err)
	}

	// Keys given twice: the first is handled, the second is the error, and
	// nothing after it is.
	p, keys = Parser{}, nil
	p.Mapping(doc(t, "a: 1\nb: 2\na: 3\nc: 4\n"), "top.", func(key string, k, v *yaml.Node) { keys = append(keys, key) })
	wantErr(t, p.Err, "line 3: top.a: given twice")
	if !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("handled %v, want a and b only", keys)
	}

	// Unknown keys, reported by the callback, stop the mapping.
	p, keys = Parser{}, nil
	p.Mapping(doc(t, "x: 1\nbogus: 2\ny: 3\n"), "sec.", func(key string, k, v *yaml.Node) {
		keys = append(keys, key)
		if key != "x" && key != "y" {
			p.Unknown(k, "sec."+key)
		}
	})
	wantErr(t, p.Err, "line 2: sec.bogus: unknown key")
	if !slices.Equal(keys, []string{"x", "bogus"}) {
		t.Fatalf("handled %v after an unknown key", keys)
	}

	// Not a mapping, at the top and inside.
	p = Parser{}
	p.Mapping(value(t, "a: 1\nl:\n  - 1\n", "l"), "l.", func(string, *yaml.Node, *yaml.Node) { t.Fatal("called on a list") })
	wantErr(t, p.Err, "line 3: l: want a mapping of keys")
	p = Parser{}
	var top yaml.Node
	if err := yaml.Unmarshal([]byte("\n- 1\n"), &top); err != nil {
		t.Fatal(err)
	}
	p.Mapping(top.Content[0], "", func(string, *yaml.Node, *yaml.Node) { t.Fatal("called on a list") })
	wantErr(t, p.Err, "line 2: want a mapping of keys")

	// A key that is not a single value.
	p = Parser{}
	p.Mapping(doc(t, "a: 1\n? [x, y]\n: 2\n"), "m.", func(string, *yaml.Node, *yaml.Node) {})
	wantErr(t, p.Err, "line 2: m: a key must be a single value")

	// Once an error is set, nothing more happens.
	p = Parser{Err: errors.New("first")}
	p.Mapping(doc(t, "a: 1\n"), "", func(string, *yaml.Node, *yaml.Node) { t.Fatal("called after an error") })
	p.Fail(doc(t, "a: 1\n"), "a", "second")
	p.Unknown(doc(t, "a: 1\n"), "a")
	wantErr(t, p.Err, "first")
}

// get runs one getter on the value of key v in "v: <in>" and returns what
// it returned and the error.
func get[T any](t *testing.T, in string, f func(p *Parser, n *yaml.Node) T) (T, error) {
	t.Helper()
	var p Parser
	got := f(&p, value(t, "other: 1\nv: "+in+"\n", "v"))
	return got, p.Err
}

func TestScalars(t *testing.T) {
	str := func(p *Parser, n *yaml.Node) string { return p.Str(n, "k.v") }
	if s, err := get(t, `"a b"`, str); err != nil || s != "a b" {
		t.Errorf("Str = %q, %v", s, err)
	}
	_, err := get(t, "[a, b]", str)
	wantErr(t, err, "line 2: k.v: want a single value")
	_, err = get(t, "{a: b}", str)
	wantErr(t, err, "line 2: k.v: want a single value")

	dur := func(p *Parser, n *yaml.Node) time.Duration { return p.Duration(n, "d") }
	pos := func(p *Parser, n *yaml.Node) time.Duration { return p.Positive(n, "d") }
	nonneg := func(p *Parser, n *yaml.Node) time.Duration { return p.NonNegative(n, "d") }
	for _, tc := range []struct {
		f    func(*Parser, *yaml.Node) time.Duration
		in   string
		want time.Duration
		err  string
	}{
		{dur, "1m30s", 90 * time.Second, ""},
		{dur, "-2ms", -2 * time.Millisecond, ""},
		{dur, "15", 0, `line 2: d: "15" is not a duration (write it like 15s, 500ms or 2m)`},
		{dur, "15x", 0, `line 2: d: "15x" is not a duration (write it like 15s, 500ms or 2m)`},
		{dur, "[1s]", 0, "line 2: d: want a single value"},
		{pos, "1ns", 1, ""},
		{pos, "0s", 0, "line 2: d: must be positive, got 0s"},
		{pos, "-1s", 0, "line 2: d: must be positive, got -1s"},
		{pos, "soon", 0, `line 2: d: "soon" is not a duration (write it like 15s, 500ms or 2m)`},
		{nonneg, "0s", 0, ""},
		{nonneg, "-1ms", 0, "line 2: d: must not be negative, got -1ms"},
	} {
		got, err := get(t, tc.in, tc.f)
		if tc.err != "" {
			wantErr(t, err, tc.err)
		} else if err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}

	integer := func(p *Parser, n *yaml.Node) int { return p.Integer(n, "n", 1, 10) }
	for in, want := range map[string]int{"1": 1, "10": 10, "007": 7} {
		if got, err := get(t, in, integer); err != nil || got != want {
			t.Errorf("Integer(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "11", "-1", "1.5", "1e3", "ten", "99999999999999999999"} {
		_, err := get(t, in, integer)
		wantErr(t, err, `line 2: n: want a whole number from 1 to 10, got "`+in+`"`)
	}

	float := func(p *Parser, n *yaml.Node) float64 { return p.Float(n, "x", 0, 0.99) }
	for in, want := range map[string]float64{"0": 0, "0.5": 0.5, ".99": 0.99, "9e-1": 0.9} {
		if got, err := get(t, in, float); err != nil || got != want {
			t.Errorf("Float(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"1", "-0.1", "NaN", "nan", "Inf", "half", "0x"} {
		_, err := get(t, in, float)
		wantErr(t, err, `line 2: x: want a number from 0 to 0.99, got "`+in+`"`)
	}

	boolean := func(p *Parser, n *yaml.Node) bool { return p.Boolean(n, "b") }
	for in, want := range map[string]bool{"true": true, "false": false} {
		if got, err := get(t, in, boolean); err != nil || got != want {
			t.Errorf("Boolean(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"yes", "True", "1", "maybe", `""`} {
		_, err := get(t, in, boolean)
		if err == nil || !strings.HasPrefix(err.Error(), "line 2: b: want true or false, got ") {
			t.Errorf("Boolean(%q): %v", in, err)
		}
	}

	strs := func(p *Parser, n *yaml.Node) []string { return p.Strings(n, "l") }
	for in, want := range map[string][]string{"[a, b]": {"a", "b"}, "one": {"one"}, "[]": {}, "\n  - x\n  - y": {"x", "y"}} {
		if got, err := get(t, in, strs); err != nil || !slices.Equal(got, want) {
			t.Errorf("Strings(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err = get(t, "{a: b}", strs)
	wantErr(t, err, "line 2: l: want a list of values")
	_, err = get(t, "\n  - a\n  - [b]", strs)
	wantErr(t, err, "line 4: l: want a single value")
}

// Every getter is a no-op once an error is set: the first error stays.
func TestFirstErrorStays(t *testing.T) {
	n := value(t, "v: 15x\n", "v")
	p := Parser{}
	p.Duration(n, "first")
	first := p.Err
	p.Positive(n, "second")
	p.NonNegative(n, "third")
	p.Integer(n, "fourth", 0, 1)
	p.Float(n, "fifth", 0, 1)
	p.Boolean(n, "sixth")
	if s := p.Str(n, "seventh"); s != "" {
		t.Errorf("Str after an error = %q", s)
	}
	if l := p.Strings(n, "eighth"); l != nil {
		t.Errorf("Strings after an error = %q", l)
	}
	if p.Err != first {
		t.Fatalf("err = %v, want the first one %v", p.Err, first)
	}
}

var lineErr = regexp.MustCompile(`^line ([1-9][0-9]*): `)

// lines bounds the number of lines in data as YAML counts them: it breaks
// lines at \n, \r\n, \r and, in UTF-8, NEL, LS and PS.
func lines(data []byte) int {
	n := 1
	for _, b := range [][]byte{[]byte("\n"), []byte("\r"), []byte("\u0085"), []byte("\u2028"), []byte("\u2029")} {
		n += bytes.Count(data, b)
	}
	return n
}

// checkLine fails unless err names a line of data (or is YAML's own).
func checkLine(t *testing.T, data []byte, err error) {
	t.Helper()
	msg := err.Error()
	if strings.HasPrefix(msg, "not valid YAML: ") {
		return
	}
	m := lineErr.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("error %q names no line", msg)
	}
	if n, _ := strconv.Atoi(m[1]); n > lines(data) {
		t.Fatalf("error %q names a line past the end of %q", msg, data)
	}
}

// walk reads every mapping of the tree with Mapping, recording the keys
// it was given, and every value with the getter that fits it.
func walk(p *Parser, n *yaml.Node, prefix string, seen map[*yaml.Node][]string) {
	p.Mapping(n, prefix, func(key string, k, v *yaml.Node) {
		seen[n] = append(seen[n], key)
		switch v.Kind {
		case yaml.MappingNode:
			walk(p, v, prefix+key+".", seen)
		case yaml.SequenceNode:
			p.Strings(v, prefix+key)
		default:
			p.Str(v, prefix+key)
		}
	})
}

// FuzzDocument reads anything with Document and Mapping: every error names
// a line of the input (or is YAML's own); without an error, Mapping has
// handed over every key of every mapping it read, in order, none twice,
// and every list held single values only. The typed getters agree with
// the standard library's parsers on every value, and their errors name
// the value's line.
func FuzzDocument(f *testing.F) {
	for _, s := range []string{
		"a: 1\nb:\n  c: 15s\n  d: [x, y]\n", "a: 1\na: 2\n", "- 1\n", "", "a: {b: {c: {d: 1e3}}}\n",
		"? [a]\n: 1\n", "x: &a {y: 1}\nz: *a\n", "a: 0.5\nb: true\nc: -3\nd: NaN\n", "\r0",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := Document(data)
		if err != nil {
			checkLine(t, data, err)
			return
		}
		if root.Kind != yaml.MappingNode {
			t.Fatalf("Document returned a %v node", root.Kind)
		}
		var p Parser
		seen := map[*yaml.Node][]string{}
		walk(&p, root, "", seen)
		if p.Err != nil {
			checkLine(t, data, p.Err)
			return
		}
		for n, keys := range seen {
			var want []string
			for i := 0; i < len(n.Content); i += 2 {
				want = append(want, n.Content[i].Value)
			}
			if !slices.Equal(keys, want) {
				t.Fatalf("Mapping handed over %q of %q", keys, want)
			}
			if s := slices.Clone(keys); len(slices.Compact(func() []string { slices.Sort(s); return s }())) != len(keys) {
				t.Fatalf("Mapping handed over a key twice without an error: %q", keys)
			}
		}
		// The typed getters on every scalar value.
		var scalars func(n *yaml.Node)
		scalars = func(n *yaml.Node) {
			for _, c := range n.Content {
				scalars(c)
			}
			if n.Kind != yaml.ScalarNode {
				return
			}
			check := func(ok bool, p *Parser, what string) {
				switch {
				case ok && p.Err != nil:
					t.Fatalf("%s(%q) failed: %v", what, n.Value, p.Err)
				case !ok && p.Err == nil:
					t.Fatalf("%s(%q) accepted it", what, n.Value)
				case p.Err != nil && !strings.HasPrefix(p.Err.Error(), "line "+strconv.Itoa(n.Line)+": k: "):
					t.Fatalf("%s(%q) error %q does not name line %d and the key", what, n.Value, p.Err, n.Line)
				}
			}
			d, derr := time.ParseDuration(n.Value)
			var p Parser
			if got := p.Duration(n, "k"); derr == nil && got != d {
				t.Fatalf("Duration(%q) = %v, want %v", n.Value, got, d)
			}
			check(derr == nil, &p, "Duration")
			p = Parser{}
			p.Positive(n, "k")
			check(derr == nil && d > 0, &p, "Positive")
			p = Parser{}
			p.NonNegative(n, "k")
			check(derr == nil && d >= 0, &p, "NonNegative")
			i, ierr := strconv.ParseInt(n.Value, 10, 64)
			p = Parser{}
			if got := p.Integer(n, "k", -100, 100); ierr == nil && got != int(i) {
				t.Fatalf("Integer(%q) = %d", n.Value, got)
			}
			check(ierr == nil && i >= -100 && i <= 100, &p, "Integer")
			x, ferr := strconv.ParseFloat(n.Value, 64)
			p = Parser{}
			if got := p.Float(n, "k", -1, 1); ferr == nil && got != x && !math.IsNaN(x) {
				t.Fatalf("Float(%q) = %v", n.Value, got)
			}
			check(ferr == nil && !math.IsNaN(x) && x >= -1 && x <= 1, &p, "Float")
			p = Parser{}
			b := p.Boolean(n, "k")
			check(n.Value == "true" || n.Value == "false", &p, "Boolean")
			if p.Err == nil && b != (n.Value == "true") {
				t.Fatalf("Boolean(%q) = %v", n.Value, b)
			}
		}
		scalars(root)
	})
}
