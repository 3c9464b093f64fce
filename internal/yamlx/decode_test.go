package yamlx

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
}

type sample struct {
	Endpoints    []string      `yaml:"endpoints"`
	Prefix       string        `yaml:"prefix"`
	Timeout      time.Duration `yaml:"timeout"`
	On           bool          `yaml:"on"`
	Count        int           `yaml:"count"`
	Ratio        float64       `yaml:"ratio"`
	TLS          inner         `yaml:"tls"`
	PasswordFile string        `yaml:"password_file"`
	Password     string        `yaml:"-"`
	Untagged     string
	hidden       string `yaml:"hidden"`
}

func decode(t *testing.T, src string, out *sample) (map[string]int, error) {
	t.Helper()
	root, err := Document([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	// The block is the value of the file's only key, x.
	return lines, Decode(root.Content[1], "x", out, lines)
}

func TestDecode(t *testing.T) {
	s := sample{Prefix: "/default/", Timeout: time.Second, Endpoints: []string{"d"}}
	lines, err := decode(t, `x:
  endpoints: [a, b]
  timeout: 1m30s
  on: true
  count: -3
  ratio: 0.5
  tls: {ca: ca.pem}
  password_file: ""
`, &s)
	if err != nil {
		t.Fatal(err)
	}
	want := sample{Endpoints: []string{"a", "b"}, Prefix: "/default/", Timeout: 90 * time.Second, On: true, Count: -3,
		Ratio: 0.5, TLS: inner{CA: "ca.pem"}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	wantLines := map[string]int{"x": 2, "x.endpoints": 2, "x.timeout": 3, "x.on": 4, "x.count": 5, "x.ratio": 6, "x.tls": 7, "x.tls.ca": 7}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Fatalf("lines %v, want %v (an empty value records none)", lines, wantLines)
	}
}

// Empty values leave the field alone; an empty list is a value; a single
// value is a list of one.
func TestDecodeEmpty(t *testing.T) {
	s := sample{Prefix: "/p/", Timeout: time.Second, On: true, Endpoints: []string{"d"}, TLS: inner{CA: "c"}}
	if _, err := decode(t, "x: {prefix: '', timeout: ~, on: null, tls: , count: \"\"}\n", &s); err != nil {
		t.Fatal(err)
	}
	if s.Prefix != "/p/" || s.Timeout != time.Second || !s.On || s.TLS.CA != "c" || len(s.Endpoints) != 1 {
		t.Fatalf("empty values changed the fields: %+v", s)
	}
	if _, err := decode(t, "x: {endpoints: []}\n", &s); err != nil || s.Endpoints == nil || len(s.Endpoints) != 0 {
		t.Fatalf("endpoints: [] gave %#v, %v; want an empty list", s.Endpoints, err)
	}
	if _, err := decode(t, "x: {endpoints: one}\n", &s); err != nil || !reflect.DeepEqual(s.Endpoints, []string{"one"}) {
		t.Fatalf("endpoints: one gave %#v, %v", s.Endpoints, err)
	}
	if _, err := decode(t, "x:\n", &s); err != nil {
		t.Fatalf("an empty block: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"x: {bogus: 1}\n", "line 1: x.bogus: unknown key"},
		{"x:\n  prefix: a\n  prefix: b\n", "line 3: x.prefix: given twice"},
		{"x: {password: hunter2}\n", "line 1: x.password: secrets are read from files: use x.password_file"},
		{"x: {Untagged: a}\n", "x.Untagged: unknown key"},
		{"x: {hidden: a}\n", "x.hidden: unknown key"},
		{"x: {timeout: 15}\n", `line 1: x.timeout: "15" is not a duration (write it like 15s, 500ms or 2m)`},
		{"x: {on: yes}\n", `x.on: want true or false, got "yes"`},
		{"x: {count: 1.5}\n", `x.count: want a whole number, got "1.5"`},
		{"x: {count: 99999999999999999999}\n", `x.count: want a whole number`},
		{"x: {ratio: .nan}\n", `x.ratio: want a number`},
		{"x: {prefix: [a]}\n", "x.prefix: want a single value"},
		{"x: {endpoints: {a: b}}\n", "x.endpoints: want a list of values"},
		{"x:\n  endpoints:\n    - [a]\n", "line 3: x.endpoints: want a list of single values"},
		{"x: {tls: a}\n", "x.tls: want a mapping of keys"},
		{"x: {tls: {cert: a, key: b}}\n", "line 1: x.tls.key: unknown key"},
		{"x: [a]\n", "line 1: x: want a mapping of keys"},
		{"x: {[a]: b}\n", "x: want a key, got a list"},
	} {
		var s sample
		_, err := decode(t, tc.src, &s)
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want a FieldError containing %q", tc.src, err, tc.want)
		}
	}
	if err := Decode(nil, "x", sample{}, nil); err == nil {
		t.Error("decoding into a non-pointer: no error")
	}
}

// Aliases are followed.
func TestDecodeAlias(t *testing.T) {
	var s sample
	root, err := Document([]byte("a: &tls {ca: c.pem}\nx: {tls: *tls}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(root.Content[3], "x", &s, nil); err != nil || s.TLS.CA != "c.pem" {
		t.Fatalf("alias: %+v, %v", s.TLS, err)
	}
}

func TestSetText(t *testing.T) {
	s := sample{Endpoints: []string{"d"}, Prefix: "/p/"}
	for _, kv := range [][2]string{{"endpoints", " a, ,b "}, {"timeout", "2s"}, {"on", "true"}, {"tls.cert", "c.pem"}, {"prefix", ""}} {
		if err := SetText(&s, kv[0], kv[1]); err != nil {
			t.Fatalf("%s=%q: %v", kv[0], kv[1], err)
		}
	}
	if !reflect.DeepEqual(s.Endpoints, []string{"a", "b"}) || s.Timeout != 2*time.Second || !s.On || s.TLS.Cert != "c.pem" || s.Prefix != "/p/" {
		t.Fatalf("got %+v", s)
	}
	if err := SetText(&s, "endpoints", "  "); err != nil || len(s.Endpoints) != 2 {
		t.Fatalf("blank text set %v, %v; want nothing set", s.Endpoints, err)
	}
	for _, tc := range []struct{ key, text, want string }{
		{"timeout", "long", `timeout: "long" is not a duration (write it like 15s`},
		{"nope", "x", "nope: unknown key"},
		{"prefix.x", "x", "unknown key"},
		{"tls", "x", "a mapping of keys"},
		{"on", "maybe", "want true or false"},
		{"endpoints", " , ", `endpoints: " , " lists nothing`},
	} {
		err := SetText(&s, tc.key, tc.text)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Line != 0 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetText(%s, %q) = %v, want %q", tc.key, tc.text, err, tc.want)
		}
	}
}
