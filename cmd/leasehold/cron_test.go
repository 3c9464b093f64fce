package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// resolveCron loads file and flags as leasehold cron does and resolves
// the job.
func resolveCron(t *testing.T, file string, args ...string) (*cronJob, error) {
	t.Helper()
	cmd := newCronCmd()
	if err := cmd.Flags().Parse(args); err != nil {
		return nil, flagError(cmd, err)
	}
	var co cronOptions
	for _, f := range []struct {
		name string
		p    *string
	}{{"schedule", &co.schedule}, {"timezone", &co.timezone}, {"job", &co.job}, {"interrupted", &co.interrupted}, {"overlap", &co.overlap}} {
		*f.p, _ = cmd.Flags().GetString(f.name)
	}
	co.catchUp, _ = cmd.Flags().GetDuration("catch-up")
	cfg, err := loadWith(t, file, nil)
	if err != nil {
		return nil, err
	}
	j := &cronJob{}
	return j, j.resolve(cfg, co, cmd.Flags())
}

// The cron: block of the config file, the flags over it, and errors that
// name the flag or the key with its line.
func TestCronSettings(t *testing.T) {
	file := "name: reports\ncron:\n  schedule: \"@every 30s\"\n  timezone: Europe/Berlin\n  catch_up: 10m\n  interrupted: rerun\n"
	j, err := resolveCron(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if j.sched.String() != "@every 30s" || j.sched.Location().String() != "Europe/Berlin" || j.catchUp != 10*time.Minute ||
		!j.rerun || j.skipOverlap || j.job != "reports" {
		t.Fatalf("from the file: %+v", j)
	}
	j, err = resolveCron(t, file, "--schedule", "0 3 * * *", "--interrupted", "skip", "--catch-up", "0s", "--job", "nightly", "--overlap", "skip")
	if err != nil {
		t.Fatal(err)
	}
	if j.sched.String() != "0 3 * * *" || j.catchUp != 0 || j.rerun || !j.skipOverlap || j.job != "nightly" {
		t.Fatalf("flags over the file: %+v", j)
	}
	if j, _ := resolveCron(t, "name: x\n", "--schedule", "@hourly"); j.catchUp != -1 {
		t.Fatalf("no catch-up given: %v, want one period (-1)", j.catchUp)
	}
	for _, tc := range []struct {
		file string
		args []string
		want string
	}{
		{"name: x\n", nil, "--schedule: missing"},
		{"name: x\n", []string{"--schedule", "* * *"}, "--schedule: "},
		{"name: x\ncron: {schedule: \"@every soon\"}\n", nil, `line 2: cron.schedule: @every: "soon" is not a duration`},
		{"name: x\ncron: {schedule: \"@hourly\", timezone: Mars/Olympus}\n", nil, `line 2: cron.timezone "Mars/Olympus": not a time zone`},
		{"name: x\n", []string{"--schedule", "@hourly", "--timezone", "Local"}, `--timezone "Local"`},
		{"name: x\ncron:\n  schedule: \"@hourly\"\n  interrupted: twice\n", nil, `line 4: cron.interrupted "twice": want skip or rerun`},
		{"name: x\n", []string{"--schedule", "@hourly", "--overlap", "queue"}, `--overlap "queue": want wait or skip`},
		{"name: x\n", []string{"--schedule", "@hourly", "--catch-up", "-1s"}, "--catch-up (-1s) must be from 0s to 168h0m0s"},
		{"name: x\n", []string{"--schedule", "@hourly", "--job", "Bad_Name"}, `--job "Bad_Name"`},
		{"name: x\n", []string{"--schedule", "0 0 30 2 *"}, "it never comes due"},
		{"name: x\ncron: {scheduel: \"@hourly\"}\n", nil, "cron.scheduel: unknown key"},
	} {
		_, err := resolveCron(t, tc.file, tc.args...)
		if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: err = %v, want a usage error with %q", tc.file, tc.args, err, tc.want)
		}
	}
}

// The configuration shown in docs/config.md is a valid file, cron: block
// included.
func TestConfigDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no yaml block in docs/config.md")
	}
	cfg, err := loadWith(t, string(m[1]), nil)
	if err != nil {
		t.Fatalf("docs/config.md's example: %v", err)
	}
	if cfg.Cron.Schedule == "" || cfg.Name == "" {
		t.Fatalf("docs/config.md's example: %+v", cfg.Cron)
	}
}
