package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is a simulation to run: the candidates, their timing, the
// network, the clocks and the faults. docs/simulator.md documents every key.
type Scenario struct {
	Name     string
	Nodes    int
	Duration time.Duration
	Seed     uint64
	HasSeed  bool // the file set a seed

	LeaseDuration   time.Duration
	RenewDeadline   time.Duration
	RetryPeriod     time.Duration
	ReleaseOnCancel bool
	Watch           bool

	Latency time.Duration // one way
	Jitter  time.Duration // extra one-way delay, uniform in [0, Jitter)
	Loss    float64       // probability a message is lost

	Clocks []Clock // one per node, index 0 = n1
	Faults []Fault
	Random *RandomFaults
}

// Clock describes one node's clock: Rate is its speed relative to true
// time; Offset shifts its wall clock only.
type Clock struct {
	Offset time.Duration
	Rate   float64
}

// FaultKind is what a fault does.
type FaultKind string

// The kinds of faults.
const (
	Crash     FaultKind = "crash"
	Partition FaultKind = "partition"
	Pause     FaultKind = "pause"
	ClockJump FaultKind = "clock_jump"
	Stop      FaultKind = "stop"
)

var faultKinds = []FaultKind{Crash, Partition, Pause, ClockJump, Stop}

// Leader as a fault target means whoever holds the record at that instant.
const Leader = "leader"

// Fault is one fault on the timeline.
type Fault struct {
	At      time.Duration
	Kind    FaultKind
	Targets []string      // node ids or "leader"
	For     time.Duration // crash/stop: restart after; partition: heal after; pause: length (0 = never)
	By      time.Duration // clock_jump: how far the wall clock moves
	Line    int
}

// RandomFaults draws faults from the seed: one about every Every (uniform
// in [Every/2, 3·Every/2)), of a kind drawn from Kinds, lasting up to MaxDown.
type RandomFaults struct {
	Every   time.Duration
	Kinds   []FaultKind
	MaxDown time.Duration
}

// NodeID names node i (0-based): n1, n2, ...
func NodeID(i int) string { return "n" + strconv.Itoa(i+1) }

// DefaultScenario returns the values used for keys a file leaves out.
func DefaultScenario() Scenario {
	return Scenario{
		Name: "unnamed", Nodes: 3, Duration: 10 * time.Minute, Seed: 1,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		ReleaseOnCancel: true, Watch: true, Latency: time.Millisecond,
	}
}

// ParseScenario reads a scenario file. Errors name the key and its line:
// "line 7: lease.renew_deadline: ...".
func ParseScenario(data []byte) (*Scenario, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	sc := DefaultScenario()
	if len(doc.Content) == 0 {
		return nil, errors.New("the scenario is empty")
	}
	p := parser{}
	var clocks *yaml.Node
	var faults *yaml.Node
	p.mapping(doc.Content[0], "", func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			sc.Name = p.str(v, key)
		case "nodes":
			sc.Nodes = p.integer(v, key, 1, 1000)
		case "duration":
			sc.Duration = p.positive(v, key)
		case "seed":
			sc.Seed, sc.HasSeed = uint64(p.integer(v, key, 0, math.MaxInt64)), true
		case "lease":
			p.mapping(v, "lease.", func(key string, k, v *yaml.Node) {
				switch key {
				case "duration":
					sc.LeaseDuration = p.positive(v, "lease."+key)
				case "renew_deadline":
					sc.RenewDeadline = p.positive(v, "lease."+key)
					p.rdLine = v.Line
				case "retry_period":
					sc.RetryPeriod = p.positive(v, "lease."+key)
				case "release_on_cancel":
					sc.ReleaseOnCancel = p.boolean(v, "lease."+key)
				default:
					p.unknown(k, "lease."+key)
				}
			})
		case "watch":
			sc.Watch = p.boolean(v, key)
		case "network":
			p.mapping(v, "network.", func(key string, k, v *yaml.Node) {
				switch key {
				case "latency":
					sc.Latency = p.nonNegative(v, "network."+key)
				case "jitter":
					sc.Jitter = p.nonNegative(v, "network."+key)
				case "loss":
					sc.Loss = p.float(v, "network."+key, 0, 0.99)
				default:
					p.unknown(k, "network."+key)
				}
			})
		case "clocks":
			clocks = v
		case "faults":
			faults = v
		case "random_faults":
			sc.Random = p.random(v)
		default:
			p.unknown(k, key)
		}
	})
	if p.err != nil {
		return nil, p.err
	}
	sc.Clocks = make([]Clock, sc.Nodes)
	for i := range sc.Clocks {
		sc.Clocks[i].Rate = 1
	}
	if clocks != nil {
		p.mapping(clocks, "clocks.", func(id string, k, v *yaml.Node) {
			i := p.node(k, "clocks", id, sc.Nodes)
			if i < 0 {
				return
			}
			p.mapping(v, "clocks."+id+".", func(key string, k, v *yaml.Node) {
				switch key {
				case "offset":
					sc.Clocks[i].Offset = p.duration(v, "clocks."+id+".offset")
				case "rate":
					sc.Clocks[i].Rate = p.float(v, "clocks."+id+".rate", 0.01, 100)
				default:
					p.unknown(k, "clocks."+id+"."+key)
				}
			})
		})
	}
	if faults != nil {
		sc.Faults = p.faults(faults, &sc)
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := p.timing(&sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// timing checks LeaseDuration > RenewDeadline > 1.2 × RetryPeriod.
func (p *parser) timing(sc *Scenario) error {
	line := ""
	if p.rdLine > 0 {
		line = fmt.Sprintf("line %d: ", p.rdLine)
	}
	switch {
	case sc.LeaseDuration <= sc.RenewDeadline:
		return fmt.Errorf("%slease.renew_deadline (%v) must be less than lease.duration (%v)", line, sc.RenewDeadline, sc.LeaseDuration)
	case float64(sc.RenewDeadline) <= 1.2*float64(sc.RetryPeriod):
		return fmt.Errorf("%slease.renew_deadline (%v) must be greater than 1.2 × lease.retry_period (%v)", line, sc.RenewDeadline, sc.RetryPeriod)
	}
	return nil
}

// parser keeps the first error; later calls do nothing once one is set.
type parser struct {
	err    error
	rdLine int // line of lease.renew_deadline, for the timing rule
}

func (p *parser) fail(n *yaml.Node, key, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("line %d: %s: %s", n.Line, key, fmt.Sprintf(format, args...))
	}
}

func (p *parser) unknown(k *yaml.Node, key string) { p.fail(k, key, "unknown key") }

func (p *parser) mapping(n *yaml.Node, prefix string, f func(key string, k, v *yaml.Node)) {
	if p.err != nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		if prefix == "" {
			p.err = fmt.Errorf("line %d: the scenario must be a mapping of keys", n.Line)
		}
		p.fail(n, strings.TrimSuffix(prefix, "."), "want a mapping of keys")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.fail(k, prefix+k.Value, "given twice")
			return
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
}

func (p *parser) scalar(n *yaml.Node, key string) (string, bool) {
	if p.err != nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, key, "want a single value")
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(n *yaml.Node, key string) string {
	s, _ := p.scalar(n, key)
	return s
}

func (p *parser) duration(n *yaml.Node, key string) time.Duration {
	s, ok := p.scalar(n, key)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(n, key, "%q is not a duration (write it like 15s, 500ms or 2m)", s)
	}
	return d
}

func (p *parser) positive(n *yaml.Node, key string) time.Duration {
	d := p.duration(n, key)
	if p.err == nil && d <= 0 {
		p.fail(n, key, "must be positive, got %v", d)
	}
	return d
}

func (p *parser) nonNegative(n *yaml.Node, key string) time.Duration {
	d := p.duration(n, key)
	if p.err == nil && d < 0 {
		p.fail(n, key, "must not be negative, got %v", d)
	}
	return d
}

func (p *parser) integer(n *yaml.Node, key string, lo, hi int64) int {
	s, ok := p.scalar(n, key)
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		p.fail(n, key, "want a whole number from %d to %d, got %q", lo, hi, s)
	}
	return int(v)
}

func (p *parser) float(n *yaml.Node, key string, lo, hi float64) float64 {
	s, ok := p.scalar(n, key)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		p.fail(n, key, "want a number from %g to %g, got %q", lo, hi, s)
	}
	return v
}

func (p *parser) boolean(n *yaml.Node, key string) bool {
	s, ok := p.scalar(n, key)
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	p.fail(n, key, "want true or false, got %q", s)
	return false
}

// node resolves a node id written at n; -1 if it does not exist.
func (p *parser) node(n *yaml.Node, key, id string, nodes int) int {
	if p.err != nil {
		return -1
	}
	for i := range nodes {
		if NodeID(i) == id {
			return i
		}
	}
	p.fail(n, key, "no node %q (the scenario has n1..n%d)", id, nodes)
	return -1
}

func (p *parser) kind(n *yaml.Node, key string) FaultKind {
	s, _ := p.scalar(n, key)
	if p.err == nil && !slices.Contains(faultKinds, FaultKind(s)) {
		p.fail(n, key, "unknown fault kind %q (want one of crash, partition, pause, clock_jump, stop)", s)
	}
	return FaultKind(s)
}

func (p *parser) random(n *yaml.Node) *RandomFaults {
	r := &RandomFaults{}
	kinds := false
	p.mapping(n, "random_faults.", func(key string, k, v *yaml.Node) {
		name := "random_faults." + key
		switch key {
		case "every":
			r.Every = p.positive(v, name)
		case "max_down":
			r.MaxDown = p.positive(v, name)
		case "kinds":
			kinds = true
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				p.fail(v, name, "want a list of fault kinds")
				return
			}
			for _, c := range v.Content {
				r.Kinds = append(r.Kinds, p.kind(c, name))
			}
		default:
			p.unknown(k, name)
		}
	})
	if p.err == nil {
		switch {
		case r.Every == 0:
			p.fail(n, "random_faults.every", "missing")
		case r.MaxDown == 0:
			p.fail(n, "random_faults.max_down", "missing")
		case !kinds:
			p.fail(n, "random_faults.kinds", "missing")
		}
	}
	return r
}

func (p *parser) faults(n *yaml.Node, sc *Scenario) []Fault {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "faults", "want a list of faults")
		return nil
	}
	var out []Fault
	for i, item := range n.Content {
		if p.err != nil {
			break
		}
		prefix := fmt.Sprintf("faults[%d].", i)
		f := Fault{Line: item.Line, At: -1}
		var modifier, modLine string
		var modNode *yaml.Node
		p.mapping(item, prefix, func(key string, k, v *yaml.Node) {
			name := prefix + key
			switch key {
			case "at":
				f.At = p.nonNegative(v, name)
			case "crash", "partition", "pause", "clock_jump", "stop":
				if f.Kind != "" {
					p.fail(k, name, "a fault does one thing: %s is already given", f.Kind)
					return
				}
				f.Kind = FaultKind(key)
				f.Targets = p.targets(v, name, sc.Nodes, key == "partition")
			case "restart_after", "heal_after", "for":
				if modifier != "" {
					p.fail(k, name, "%s is already given", modifier)
					return
				}
				modifier, modLine, modNode = key, name, v
				f.For = p.positive(v, name)
			case "by":
				f.By = p.duration(v, name)
				if p.err == nil && f.By == 0 {
					p.fail(v, name, "must not be zero")
				}
			default:
				p.unknown(k, name)
			}
		})
		if p.err != nil {
			break
		}
		switch {
		case f.At < 0:
			p.fail(item, prefix+"at", "missing")
		case f.At > sc.Duration:
			p.fail(item, prefix+"at", "%v is after the end of the run (duration %v)", f.At, sc.Duration)
		case f.Kind == "":
			p.fail(item, prefix[:len(prefix)-1], "say what happens: crash, partition, pause, clock_jump or stop")
		case f.Kind == ClockJump && f.By == 0:
			p.fail(item, prefix+"by", "clock_jump needs by (how far the wall clock moves)")
		case f.Kind != ClockJump && f.By != 0:
			p.fail(item, prefix+"by", "only goes with clock_jump")
		case f.Kind == Pause && modifier != "for":
			p.fail(item, prefix+"for", "pause needs for (how long)")
		case modifier != "" && !modifierFits(f.Kind, modifier):
			p.fail(modNode, modLine, "does not go with %s", f.Kind)
		}
		out = append(out, f)
	}
	return out
}

func modifierFits(k FaultKind, mod string) bool {
	switch mod {
	case "restart_after":
		return k == Crash || k == Stop
	case "heal_after":
		return k == Partition
	case "for":
		return k == Pause
	}
	return false
}

// targets reads "leader", a node id, or (for partitions) a list of them.
func (p *parser) targets(v *yaml.Node, key string, nodes int, list bool) []string {
	one := func(n *yaml.Node) string {
		s, ok := p.scalar(n, key)
		if ok && s != Leader {
			p.node(n, key, s, nodes)
		}
		return s
	}
	if v.Kind == yaml.SequenceNode {
		if !list {
			p.fail(v, key, "takes one target")
			return nil
		}
		if len(v.Content) == 0 {
			p.fail(v, key, "empty list")
		}
		var out []string
		for _, c := range v.Content {
			out = append(out, one(c))
		}
		return out
	}
	return []string{one(v)}
}
