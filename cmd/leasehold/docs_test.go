package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docs/cli.md lists every command, flag, environment variable and exit
// status, and names no flag that does not exist: it matches --help.
func TestCLIDocs(t *testing.T) {
	data, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	sections := map[string]string{} // "## title" → its text
	parts := regexp.MustCompile(`(?m)^## `).Split(doc, -1)
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		sections[title] = body
	}
	shared := sections["Flags shared by the commands that use a lock"]
	if shared == "" {
		t.Fatal("no shared flags section")
	}
	// sharedRow is the shared table's row of a flag, or "".
	sharedRow := func(flag string) string {
		for _, line := range strings.Split(shared, "\n") {
			if strings.HasPrefix(line, "| `--"+flag+" ") || strings.HasPrefix(line, "| `--"+flag+"`") || strings.Contains(line, ", `--"+flag+" ") || strings.HasPrefix(line, "| `--"+flag+"=") {
				return line
			}
		}
		return ""
	}

	root := newRootCmd(context.Background(), io.Discard, io.Discard)
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	known := map[string]bool{"help": true, "version": true}
	// The commands that do something: bench's subcommands, not bench.
	var leaves []*cobra.Command
	for _, c := range root.Commands() {
		if c.Hidden {
			continue
		}
		if !strings.Contains(doc, "[`leasehold "+c.Name()) {
			t.Errorf("the command table lacks leasehold %s", c.Name())
		}
		if c.Name() != "completion" && c.HasSubCommands() {
			leaves = append(leaves, c.Commands()...)
			continue
		}
		leaves = append(leaves, c)
	}
	for _, c := range leaves {
		path := c.CommandPath() // leasehold bench sweep
		section, ok := sections[path]
		if !ok {
			if !strings.Contains(sections["help, version, completion"], path) {
				t.Errorf("docs/cli.md has no section for %s", path)
			}
			continue
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			known[f.Name] = true
			if f.Hidden || f.Deprecated != "" || f.Name == "help" {
				return
			}
			if regexp.MustCompile("(?m)(^|[\\s`\\[(])--" + f.Name + "\\b").MatchString(section) {
				return
			}
			row := sharedRow(f.Name)
			cols := strings.Split(strings.ReplaceAll(row, `\|`, "/"), "|")
			if len(cols) < 3 || !strings.Contains(cols[2], c.Name()) {
				t.Errorf("%s --%s: not in its section, nor in the shared table for %s", path, f.Name, c.Name())
			}
		})
		// A shared flag the table gives this command must be one of its flags.
		for _, line := range strings.Split(shared, "\n") {
			cols := strings.Split(strings.ReplaceAll(line, `\|`, "/"), "|")
			if len(cols) < 4 || !strings.Contains(cols[2], c.Name()) {
				continue
			}
			for _, m := range regexp.MustCompile("`--([a-z-]+)").FindAllStringSubmatch(cols[1], -1) {
				if c.Flags().Lookup(m[1]) == nil {
					t.Errorf("the shared table gives leasehold %s --%s, which it does not have", c.Name(), m[1])
				}
			}
		}
	}
	// Other tools' spellings, accepted by the sidecar, and the demo's old one.
	for _, alias := range []string{"election", "election-namespace", "ttl", "lease"} {
		known[alias] = true
	}
	for _, m := range regexp.MustCompile("`[^`]*`").FindAllString(doc, -1) {
		for _, f := range regexp.MustCompile(`(?:^|[\s\x60(\[])--([a-z][a-z-]*)`).FindAllStringSubmatch(m, -1) {
			if !known[f[1]] {
				t.Errorf("docs/cli.md names --%s (in %s), which no command has", f[1], m)
			}
		}
	}
	for _, v := range envVars() {
		if !strings.Contains(sections["Environment variables"], "`"+v+"`") {
			t.Errorf("docs/cli.md's environment variables lack %s", v)
		}
	}
	for _, v := range []string{"LEASEHOLD_LEADER", "LEASEHOLD_TERM", "LEASEHOLD_IDENTITY", "LEASEHOLD_LOCK"} {
		if !strings.Contains(sections["Environment variables"], "`"+v) {
			t.Errorf("docs/cli.md does not say run gives its command %s", v)
		}
	}
	for _, code := range []string{"0", "1", "2", "3", "4", "75", "128 + N"} {
		if !strings.Contains(sections["Exit status"], "\n| "+code+" |") {
			t.Errorf("docs/cli.md's exit status table lacks %s", code)
		}
	}
	for _, c := range []int{exitOK, exitFailure, exitUsage, exitUnsafe, exitNoLeader, exitNoStore, exitNotLeader} {
		if !strings.Contains(sections["Exit status"], "\n| "+strconv.Itoa(c)+" |") {
			t.Errorf("exit status %d is not in docs/cli.md", c)
		}
	}
}

// docs/library.md tells a newcomer what to go get for each store, and
// docs/cli.md lists every metric the metrics module registers (issue 22).
func TestLibraryAndMetricsDocs(t *testing.T) {
	lib, err := os.ReadFile("../../docs/library.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"", "/backend/etcd", "/backend/consul", "/backend/kube"} {
		want := regexp.MustCompile("`go get [^`]*github.com/leasehold-go/leasehold" + regexp.QuoteMeta(m) + "[ `]")
		if !want.Match(lib) {
			t.Errorf("docs/library.md does not say to go get github.com/leasehold-go/leasehold%s", m)
		}
	}
	src, err := os.ReadFile("../../metrics/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`Name: "(leasehold_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(names) < 5 {
		t.Fatalf("found %d metric names in metrics.go", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(cli), "`"+n[1]) {
			t.Errorf("docs/cli.md does not list the metric %s", n[1])
		}
	}
}
