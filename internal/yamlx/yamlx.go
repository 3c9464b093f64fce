// Package yamlx reads configuration files through yaml.v3's node tree, so
// that every error names the key and its line, unknown keys are rejected and
// nothing panics on bad input.
package yamlx

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Parser reads values out of a yaml.v3 node tree. It keeps the first error,
// which names the key and its line; once one is set, later calls do nothing.
type Parser struct {
	Err error
}

// Fail records an error at n's line for key, unless one is already set.
// An empty key (the document itself) is left out of the message.
func (p *Parser) Fail(n *yaml.Node, key, format string, args ...any) {
	if p.Err != nil {
		return
	}
	if key != "" {
		key += ": "
	}
	p.Err = fmt.Errorf("line %d: %s%s", n.Line, key, fmt.Sprintf(format, args...))
}

// Unknown reports a key the schema does not have.
func (p *Parser) Unknown(k *yaml.Node, key string) { p.Fail(k, key, "unknown key") }

// Mapping calls f for each key of the mapping n, in order (keys given
// twice and keys that are not a single value are errors); prefix is
// prepended to key names in errors.
func (p *Parser) Mapping(n *yaml.Node, prefix string, f func(key string, k, v *yaml.Node)) {
	if p.Err != nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.Fail(n, strings.TrimSuffix(prefix, "."), "want a mapping of keys")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && p.Err == nil; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.Fail(k, strings.TrimSuffix(prefix, "."), "a key must be a single value")
			return
		}
		if seen[k.Value] {
			p.Fail(k, prefix+k.Value, "given twice")
			return
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

// Scalar returns n's value if n is a single value.
func (p *Parser) Scalar(n *yaml.Node, key string) (string, bool) {
	if p.Err != nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.Fail(n, key, "want a single value")
		return "", false
	}
	return n.Value, true
}

// Str returns a string value.
func (p *Parser) Str(n *yaml.Node, key string) string {
	s, _ := p.Scalar(n, key)
	return s
}

// Duration parses a Go duration (15s, 500ms, 2m).
func (p *Parser) Duration(n *yaml.Node, key string) time.Duration {
	s, ok := p.Scalar(n, key)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.Fail(n, key, "%q is not a duration (write it like 15s, 500ms or 2m)", s)
	}
	return d
}

// Positive is a Duration that must be above zero.
func (p *Parser) Positive(n *yaml.Node, key string) time.Duration {
	d := p.Duration(n, key)
	if p.Err == nil && d <= 0 {
		p.Fail(n, key, "must be positive, got %v", d)
	}
	return d
}

// NonNegative is a Duration that must not be below zero.
func (p *Parser) NonNegative(n *yaml.Node, key string) time.Duration {
	d := p.Duration(n, key)
	if p.Err == nil && d < 0 {
		p.Fail(n, key, "must not be negative, got %v", d)
	}
	return d
}

// Integer parses a whole number in [lo, hi].
func (p *Parser) Integer(n *yaml.Node, key string, lo, hi int64) int {
	s, ok := p.Scalar(n, key)
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		p.Fail(n, key, "want a whole number from %d to %d, got %q", lo, hi, s)
	}
	return int(v)
}

// Float parses a number in [lo, hi].
func (p *Parser) Float(n *yaml.Node, key string, lo, hi float64) float64 {
	s, ok := p.Scalar(n, key)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		p.Fail(n, key, "want a number from %g to %g, got %q", lo, hi, s)
	}
	return v
}

// Boolean parses true or false.
func (p *Parser) Boolean(n *yaml.Node, key string) bool {
	s, ok := p.Scalar(n, key)
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	p.Fail(n, key, "want true or false, got %q", s)
	return false
}

// Strings reads a list of strings (a single string counts as a list of one).
func (p *Parser) Strings(n *yaml.Node, key string) []string {
	if p.Err != nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.Fail(n, key, "want a list of values")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if s, ok := p.Scalar(c, key); ok {
			out = append(out, s)
		}
	}
	return out
}

// Document parses data and returns its top-level mapping; an empty document
// (nothing, comments, a bare "---" or null) gives an empty mapping, at line
// 1, for errors about the keys it lacks.
func Document(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of keys", root.Line)
	}
	return root, nil
}
