package sim

import (
	"bytes"
	"os"
	"testing"
)

func load(t testing.TB, path string) *Scenario {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return sc
}

func TestSmoke(t *testing.T) {
	sc := load(t, "../docs/scenarios/leader-crash.yaml")
	var tr bytes.Buffer
	r, err := Run(sc, Options{Seed: 1, Trace: &tr, Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteText(&out)
	t.Log(out.String())
	t.Log(tr.Len())
}
