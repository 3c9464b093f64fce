package elector_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// libraryDoc is the page whose Go snippets must be Example code.
const libraryDoc = "../docs/library.md"

// exampleDirs maps the package a snippet names to its directory, relative to
// this one. The backends are other modules, but their files sit in this
// checkout: the check reads them, it does not build them.
var exampleDirs = map[string]string{
	"elector": ".",
	"memory":  "../backend/memory",
	"etcd":    "../backend/etcd",
	"consul":  "../backend/consul",
	"kube":    "../backend/kube",
}

// exampleRef is how the page says which Example a snippet is taken from:
// "from [`kube.Example_fromClientGo`](...)", the last such name before the
// block.
var exampleRef = regexp.MustCompile("`(\\w+)\\.(Example\\w*)`")

// snippet is one ```go block of the page.
type snippet struct {
	line     int    // of the opening fence, 1-based
	code     string // the block's text
	pkg, fun string // the Example named before it
}

// goSnippets returns the ```go blocks of a Markdown page and the Example
// each names in the text since the previous block.
func goSnippets(t *testing.T, doc string) []snippet {
	t.Helper()
	var out []snippet
	var prose, code strings.Builder
	in, start := false, 0
	for i, l := range strings.Split(doc, "\n") {
		switch {
		case !in && strings.TrimSpace(l) == "```go":
			in, start = true, i+1
			code.Reset()
		case in && strings.TrimSpace(l) == "```":
			in = false
			s := snippet{line: start, code: code.String()}
			if m := exampleRef.FindAllStringSubmatch(prose.String(), -1); m != nil {
				s.pkg, s.fun = m[len(m)-1][1], m[len(m)-1][2]
			}
			out = append(out, s)
			prose.Reset()
		case in:
			code.WriteString(l + "\n")
		default:
			prose.WriteString(l + "\n")
		}
	}
	if in {
		t.Fatalf("%s:%d: a ```go block is not closed", libraryDoc, start)
	}
	return out
}

// normalize makes whitespace (tabs, indentation, line breaks) irrelevant.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// exampleSource finds the function fun among the _test.go files of dir and
// returns the normalized source from its doc comment to the end of the file,
// and the length of the function's own part of it. A snippet may run past
// the function into the helpers that follow it, but must start inside it.
func exampleSource(t *testing.T, dir, fun string) (src string, funLen int, ok bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s (err %v)", dir, err)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, b, parser.ParseComments)
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		for _, d := range f.Decls {
			fd, isFunc := d.(*ast.FuncDecl)
			if !isFunc || fd.Recv != nil || fd.Name.Name != fun {
				continue
			}
			from := fset.Position(fd.Pos()).Offset
			if fd.Doc != nil {
				from = fset.Position(fd.Doc.Pos()).Offset
			}
			to := fset.Position(fd.End()).Offset
			return normalize(string(b[from:])), len(normalize(string(b[from:to]))), true
		}
	}
	return "", 0, false
}

// TestLibrarySnippetsAreExamples: every ```go block of docs/library.md is
// the code of the Example the text before it names (whitespace aside), so
// the page shows code that compiles and, where the Example has an Output
// comment, runs.
func TestLibrarySnippetsAreExamples(t *testing.T) {
	doc, err := os.ReadFile(libraryDoc)
	if err != nil {
		t.Fatal(err)
	}
	snippets := goSnippets(t, string(doc))
	if len(snippets) == 0 {
		t.Fatalf("%s has no ```go blocks: the check checks nothing", libraryDoc)
	}
	for _, s := range snippets {
		if s.fun == "" {
			t.Errorf("%s:%d: no Example named before this block: write \"from `pkg.ExampleName`\"", libraryDoc, s.line)
			continue
		}
		dir, known := exampleDirs[s.pkg]
		if !known {
			t.Errorf("%s:%d: `%s.%s`: no such package among %v", libraryDoc, s.line, s.pkg, s.fun, exampleDirs)
			continue
		}
		src, funLen, found := exampleSource(t, dir, s.fun)
		if !found {
			t.Errorf("%s:%d: `%s.%s`: no func %s in %s/*_test.go", libraryDoc, s.line, s.pkg, s.fun, s.fun, dir)
			continue
		}
		code := normalize(s.code)
		if i := strings.Index(src, code); i < 0 || i > funLen {
			t.Errorf("%s:%d: this block is not the code of %s.%s (%s): copy it from there again\n%s",
				libraryDoc, s.line, s.pkg, s.fun, dir, s.code)
		}
		// The check must see a change: the block with one letter changed
		// is not found.
		if changed := changeOne(code); strings.Contains(src, changed) {
			t.Errorf("%s:%d: the block with one letter changed still matches %s.%s: the check is blind", libraryDoc, s.line, s.pkg, s.fun)
		}
	}
}

// changeOne changes one letter in the middle of s.
func changeOne(s string) string {
	b := []byte(s)
	for i := len(b) / 2; i < len(b); i++ {
		if c := b[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b[i] ^= 0x20 // swap its case
			return string(b)
		}
	}
	return string(append(b, '!'))
}

// TestGoSnippets: the blocks of a page, the Example each names, and the
// normalization the comparison uses.
func TestGoSnippets(t *testing.T) {
	doc := "intro\n\nfrom `elector.Example_a`:\n\n```go\nx := 1\n```\n\ntext `kube.Example_b` then `etcd.ExampleOpen`:\n```go\n\ty()\n```\n```go\nz()\n```\n"
	got := goSnippets(t, doc)
	want := []snippet{
		{line: 5, code: "x := 1\n", pkg: "elector", fun: "Example_a"},
		{line: 10, code: "\ty()\n", pkg: "etcd", fun: "ExampleOpen"},
		{line: 13, code: "z()\n"}, // nothing named since the last block
	}
	if len(got) != len(want) {
		t.Fatalf("got %d snippets %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("snippet %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := normalize("a :=\n\t\tb(c)  "); got != "a := b(c)" {
		t.Errorf("normalize = %q, want %q", got, "a := b(c)")
	}
}
