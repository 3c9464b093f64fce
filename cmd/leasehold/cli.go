package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCmd builds the command tree. The conventions are kubectl's and
// etcdctl's, which are built on the same library: `leasehold help CMD` and
// `CMD --help` print help on stdout, every flag has one spelling (--name)
// across commands, `leasehold completion bash|zsh|fish|powershell` prints a
// completion script, and `leasehold version` / `--version` say what was
// built. Errors are printed once, by run, which also picks the exit status.
func newRootCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "leasehold",
		Short: "Leader election over etcd, Consul, Kubernetes Leases or an in-memory store",
		Long: `leasehold: leader election over etcd, Consul, Kubernetes Leases or an
in-memory store. Run a long-lived command on exactly one replica (run), tell
an application who leads over HTTP (sidecar), see who holds a lock (status),
and measure failover before production does (sim, demo).

The commands that use a lock read it from a config file (--config, see
docs/config.md), LEASEHOLD_* environment variables and flags, in that order
of precedence from lowest to highest.`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		// No command: the help, as kubectl does. An unknown one: exit 2
		// with suggestions.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return usagef("%s; leasehold --help lists the commands", msg)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SuggestionsMinimumDistance = 2
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newRunCmd(),
		newCronCmd(),
		newSidecarCmd(),
		newStatusCmd(),
		newSimCmd(),
		newDemoCmd(),
		newBenchCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version and VCS revision leasehold was built from",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				fmt.Fprintln(cmd.OutOrStdout(), version())
				return nil
			},
		},
	)
	return root
}

// noArgs refuses positional arguments as bad input (exit 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (leasehold %s --help lists the flags)", args[0], cmd.Name())
	}
	return nil
}

// invalidArg is pflag's message for a value a flag cannot parse (compiled
// when first needed: a bad flag, not at every start).
var invalidArg = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^invalid argument "(.*)" for "(?:-\w, )?(--[\w-]+)" flag: (.*)$`)
})

// singleDash is pflag's message for a long flag written with one dash
// (-name), as Go's flag package allows.
var singleDash = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^unknown shorthand flag: '.' in -([\w-]+)`)
})

// firstWord is the root command's annotation holding the first argument
// when it is a word, not a flag: the command asked for, for messages.
const firstWord = "first-word"

// firstArg returns args' first argument if it is not a flag.
func firstArg(args []string) string {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0]
	}
	return ""
}

// flagError makes a flag's parse error bad input (exit 2), said once, with
// the value's expected shape and where the flags are listed.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if m := singleDash().FindStringSubmatch(msg); m != nil && cmd.Flags().Lookup(m[1]) != nil {
		msg = fmt.Sprintf("-%s: write long flags with two dashes: --%s", m[1], m[1])
	}
	if m := invalidArg().FindStringSubmatch(msg); m != nil {
		value, name, why := m[1], m[2], m[3]
		kind := ""
		if f := cmd.Flags().Lookup(strings.TrimPrefix(name, "--")); f != nil {
			kind = f.Value.Type()
		}
		switch kind {
		case "duration":
			msg = fmt.Sprintf("%s: %q is not a duration (write it like 15s, 500ms or 2m)", name, value)
		case "int", "uint64":
			msg = fmt.Sprintf("%s: %q is not a whole number", name, value)
		case "bool":
			msg = fmt.Sprintf("%s: want true or false, got %q", name, value)
		default:
			msg = fmt.Sprintf("%s %q: %s", name, value, why)
		}
	}
	if !cmd.HasParent() {
		// A flag the root does not know, after a word that is no command
		// ("leasehold runn --config x"): the word is the mistake.
		if a := cmd.Annotations[firstWord]; a != "" {
			if c, _, err := cmd.Find([]string{a}); err != nil || c == cmd {
				msg := fmt.Sprintf("unknown command %q", a)
				if s := cmd.SuggestionsFor(a); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
				}
				return usagef("%s; leasehold --help lists the commands", msg)
			}
		}
		return usagef("%s (leasehold --help lists the flags)", msg)
	}
	return usagef("%s (leasehold %s --help lists the flags)", msg, cmd.Name())
}

// aliases maps other tools' spellings of a flag to leasehold's, for one
// command: what cobra calls a normalize func. The aliases are accepted but
// not listed in the help.
func aliases(names map[string]string) func(*pflag.FlagSet, string) pflag.NormalizedName {
	return func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if n, ok := names[name]; ok {
			return pflag.NormalizedName(n)
		}
		return pflag.NormalizedName(name)
	}
}

// version says what was built, from the build info Go records: the module
// version ("(devel)" for a build from a checkout), the VCS revision and
// time, whether the tree had uncommitted changes, and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "leasehold (no build info)"
	}
	v := "leasehold " + bi.Main.Version
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" revision %s (%s%s)", rev, at, dirty)
	}
	return v + " " + bi.GoVersion
}
