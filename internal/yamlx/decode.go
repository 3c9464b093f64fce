package yamlx

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FieldError is what Decode and SetText return: the dotted key, the line
// of the file (0 when the value did not come from a file) and what is
// wrong, with a hint where one helps.
type FieldError struct {
	Line int
	Key  string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

// Decode decodes the mapping n into the struct out points to, strictly, so
// that a package can own its configuration as a plain struct without a YAML
// library:
//
//   - the keys are the fields' `yaml:"name"` tags; fields without a tag or
//     tagged "-" are not keys;
//   - an unknown key, a key given twice and a value of the wrong type are
//     errors naming the key and its line; an unknown key k next to a field
//     k_file is told that secrets are read from files;
//   - an empty value (nothing, ~, null or an empty string) counts as
//     unset: the field keeps what it had and no line is recorded; an empty
//     list [] is a value;
//   - field types: string, bool, int kinds, float64, time.Duration (written
//     like 15s), []string (a single value is a list of one) and structs
//     (nested mappings).
//
// key is n's dotted key (etcd), prefixed to the names in errors and in
// lines; lines, if not nil, gets the line of the value of every key set
// (etcd.endpoints, etcd.tls.ca). The error is a *FieldError.
func Decode(n *yaml.Node, key string, out any, lines map[string]int) error {
	v, err := target(out, key)
	if err != nil {
		return err
	}
	d := decoder{lines: lines}
	d.value(n, key, v)
	if d.err != nil {
		return d.err
	}
	return nil
}

// SetText sets the field whose dotted key (relative to the struct out
// points to: endpoints, tls.ca) is key from text, as an environment
// variable or a flag gives it: a list is comma-separated (blank items
// dropped; a list of nothing but commas is an error), anything else is
// parsed as in a file. Empty (or blank) text sets nothing.
// The error is a *FieldError with Line 0, whose Msg the caller prefixes
// with the variable or flag.
func SetText(out any, key, text string) error {
	v, err := target(out, key)
	if err != nil {
		return err
	}
	path := strings.Split(key, ".")
	for i, name := range path {
		f, ok := field(v, name)
		if !ok {
			return &FieldError{Key: key, Msg: "unknown key"}
		}
		v = f
		if i < len(path)-1 && v.Kind() != reflect.Struct {
			return &FieldError{Key: key, Msg: "unknown key"}
		}
	}
	if v.Kind() == reflect.Struct {
		return &FieldError{Key: key, Msg: "a mapping of keys: set its keys one by one"}
	}
	if strings.TrimSpace(text) == "" {
		return nil
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: text}
	if v.Type() == reflect.TypeOf([]string(nil)) {
		n = &yaml.Node{Kind: yaml.SequenceNode}
		for _, p := range strings.Split(text, ",") {
			if p = strings.TrimSpace(p); p != "" {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
			}
		}
		if len(n.Content) == 0 {
			return &FieldError{Key: key, Msg: fmt.Sprintf("%q lists nothing (separate the values with commas)", text)}
		}
	}
	d := decoder{}
	d.value(n, key, v)
	if d.err != nil {
		return d.err
	}
	return nil
}

func target(out any, key string) (reflect.Value, error) {
	p := reflect.ValueOf(out)
	if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, &FieldError{Key: key, Msg: fmt.Sprintf("cannot decode into %T: want a pointer to a struct", out)}
	}
	return p.Elem(), nil
}

// tagName is the key of a struct field, "" if it is not one.
func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// field returns the field of struct v whose key is name.
func field(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if n := tagName(t.Field(i)); n != "" && n == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

type decoder struct {
	lines map[string]int
	err   *FieldError
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	if d.err == nil {
		d.err = &FieldError{Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
}

// empty reports whether n counts as unset.
func empty(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "")
}

var durationType = reflect.TypeOf(time.Duration(0))

// value decodes n into v, the value of key.
func (d *decoder) value(n *yaml.Node, key string, v reflect.Value) {
	if d.err != nil {
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if empty(n) {
		return
	}
	if v.Kind() == reflect.Struct {
		d.mapping(n, key, v)
		return
	}
	if d.lines != nil {
		d.lines[key] = n.Line
	}
	if v.Type() == reflect.TypeOf([]string(nil)) {
		d.strings(n, key, v)
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(n, key, "want a single value")
		return
	}
	s := n.Value
	switch {
	case v.Type() == durationType:
		x, err := time.ParseDuration(s)
		if err != nil {
			d.fail(n, key, "%q is not a duration (write it like 15s, 500ms or 2m)", s)
			return
		}
		v.SetInt(int64(x))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.fail(n, key, "want true or false, got %q", s)
		}
	case v.Kind() >= reflect.Int && v.Kind() <= reflect.Int64:
		x, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			d.fail(n, key, "want a whole number, got %q", s)
			return
		}
		v.SetInt(x)
	case v.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			d.fail(n, key, "want a number, got %q", s)
			return
		}
		v.SetFloat(x)
	default:
		d.fail(n, key, "cannot decode into a field of type %v", v.Type())
	}
}

func (d *decoder) strings(n *yaml.Node, key string, v reflect.Value) {
	switch n.Kind {
	case yaml.ScalarNode:
		v.Set(reflect.ValueOf([]string{n.Value}))
		return
	case yaml.SequenceNode:
	default:
		d.fail(n, key, "want a list of values")
		return
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias != nil {
			c = c.Alias
		}
		if c.Kind != yaml.ScalarNode {
			d.fail(c, key, "want a list of single values")
			return
		}
		out = append(out, c.Value)
	}
	v.Set(reflect.ValueOf(out))
}

func (d *decoder) mapping(n *yaml.Node, key string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, key, "want a mapping of keys")
		return
	}
	if d.lines != nil {
		d.lines[key] = n.Line
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && d.err == nil; i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, key, "want a key, got a %s", kindName(k.Kind))
			return
		}
		name := key + "." + k.Value
		if seen[k.Value] {
			d.fail(k, name, "given twice")
			return
		}
		seen[k.Value] = true
		f, ok := field(v, k.Value)
		if !ok {
			if _, secret := field(v, k.Value+"_file"); secret {
				d.fail(k, name, "secrets are read from files: use %s_file", name)
			} else {
				d.fail(k, name, "unknown key")
			}
			return
		}
		d.value(val, name, f)
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}
