package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/internal/yamlx"
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
	// WorkStop is how long a leader's work takes to return once it is told
	// to stop (its context is cancelled). A candidate neither campaigns
	// again nor releases before it has returned; on a graceful stop it
	// waits for it at most RenewDeadline, then exits without releasing.
	WorkStop time.Duration

	Latency time.Duration // one way
	Jitter  time.Duration // extra one-way delay, uniform in [0, Jitter)
	Loss    float64       // probability a message is lost

	Clocks []Clock // one per node, index 0 = n1
	// Identities are the nodes' identities, index 0 = n1; a node's id
	// unless the file gives it another (two nodes may share one, as two
	// processes started with the same --id do). Every boot of a node is a
	// new process with an instance of its own.
	Identities []string
	Faults     []Fault
	Random     *RandomFaults
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
	var clocks, identities *yaml.Node
	var faults *yaml.Node
	p.Mapping(doc.Content[0], "", func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			sc.Name = p.Str(v, key)
		case "nodes":
			sc.Nodes = p.Integer(v, key, 1, 1000)
		case "duration":
			sc.Duration = p.Positive(v, key)
			if p.Err == nil && sc.Duration > maxDuration {
				p.Fail(v, key, "at most %v", maxDuration)
			}
		case "seed":
			sc.Seed, sc.HasSeed = uint64(p.Integer(v, key, 0, math.MaxInt64)), true
		case "lease":
			p.Mapping(v, "lease.", func(key string, k, v *yaml.Node) {
				switch key {
				case "duration":
					sc.LeaseDuration = p.bounded(v, "lease."+key, maxLease)
				case "renew_deadline":
					sc.RenewDeadline = p.bounded(v, "lease."+key, maxLease)
					p.rdLine = v.Line
				case "retry_period":
					sc.RetryPeriod = p.bounded(v, "lease."+key, maxLease)
				case "release_on_cancel":
					sc.ReleaseOnCancel = p.Boolean(v, "lease."+key)
				default:
					p.Unknown(k, "lease."+key)
				}
			})
		case "watch":
			sc.Watch = p.Boolean(v, key)
		case "work_stop":
			sc.WorkStop = p.NonNegative(v, key)
			p.bounded(v, key, maxLease)
		case "network":
			p.Mapping(v, "network.", func(key string, k, v *yaml.Node) {
				switch key {
				case "latency":
					sc.Latency = p.NonNegative(v, "network."+key)
					p.bounded(v, "network."+key, maxLease)
				case "jitter":
					sc.Jitter = p.NonNegative(v, "network."+key)
					p.bounded(v, "network."+key, maxLease)
				case "loss":
					sc.Loss = p.Float(v, "network."+key, 0, 0.99)
				default:
					p.Unknown(k, "network."+key)
				}
			})
		case "clocks":
			clocks = v
		case "identities":
			identities = v
		case "faults":
			faults = v
		case "random_faults":
			sc.Random = p.random(v)
		default:
			p.Unknown(k, key)
		}
	})
	if p.Err != nil {
		return nil, p.Err
	}
	sc.Clocks = make([]Clock, sc.Nodes)
	for i := range sc.Clocks {
		sc.Clocks[i].Rate = 1
	}
	if clocks != nil {
		p.Mapping(clocks, "clocks.", func(id string, k, v *yaml.Node) {
			i := p.node(k, "clocks", id, sc.Nodes)
			if i < 0 {
				return
			}
			p.Mapping(v, "clocks."+id+".", func(key string, k, v *yaml.Node) {
				switch key {
				case "offset":
					sc.Clocks[i].Offset = p.within(v, "clocks."+id+".offset")
				case "rate":
					sc.Clocks[i].Rate = p.Float(v, "clocks."+id+".rate", 0.01, 100)
				default:
					p.Unknown(k, "clocks."+id+"."+key)
				}
			})
		})
	}
	sc.Identities = make([]string, sc.Nodes)
	for i := range sc.Identities {
		sc.Identities[i] = NodeID(i)
	}
	if identities != nil {
		p.Mapping(identities, "identities.", func(id string, k, v *yaml.Node) {
			if i := p.node(k, "identities", id, sc.Nodes); i >= 0 {
				if x := p.Str(v, "identities."+id); x != "" {
					sc.Identities[i] = x
				} else if p.Err == nil {
					p.Fail(v, "identities."+id, "must not be empty")
				}
			}
		})
	}
	if faults != nil {
		sc.Faults = p.faults(faults, &sc)
	}
	if p.Err != nil {
		return nil, p.Err
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

// Bounds that keep every instant of a run, on every node's clock, far from
// overflowing a time.Duration.
const (
	maxDuration = 1000 * time.Hour
	maxLease    = 24 * time.Hour
)

// bounded reads a positive duration of at most limit.
func (p *parser) bounded(v *yaml.Node, key string, limit time.Duration) time.Duration {
	d := p.Duration(v, key)
	if p.Err == nil && (d <= 0 && !strings.HasPrefix(key, "network.") || d > limit) {
		p.Fail(v, key, "must be between 0 and %v, got %v", limit, d)
	}
	return d
}

// within reads a duration, negative or not, of at most maxDuration either way.
func (p *parser) within(v *yaml.Node, key string) time.Duration {
	d := p.Duration(v, key)
	if p.Err == nil && (d > maxDuration || d < -maxDuration) {
		p.Fail(v, key, "must be within ±%v, got %v", maxDuration, d)
	}
	return d
}

// parser adds the scenario's own rules to the generic YAML reader.
type parser struct {
	yamlx.Parser
	rdLine int // line of lease.renew_deadline, for the timing rule
}

// node resolves a node id written at n; -1 if it does not exist.
func (p *parser) node(n *yaml.Node, key, id string, nodes int) int {
	if p.Err != nil {
		return -1
	}
	for i := range nodes {
		if NodeID(i) == id {
			return i
		}
	}
	p.Fail(n, key, "no node %q (the scenario has n1..n%d)", id, nodes)
	return -1
}

func (p *parser) kind(n *yaml.Node, key string) FaultKind {
	s, _ := p.Scalar(n, key)
	if p.Err == nil && !slices.Contains(faultKinds, FaultKind(s)) {
		p.Fail(n, key, "unknown fault kind %q (want one of crash, partition, pause, clock_jump, stop)", s)
	}
	return FaultKind(s)
}

func (p *parser) random(n *yaml.Node) *RandomFaults {
	r := &RandomFaults{}
	kinds := false
	p.Mapping(n, "random_faults.", func(key string, k, v *yaml.Node) {
		name := "random_faults." + key
		switch key {
		case "every":
			r.Every = p.bounded(v, name, maxDuration)
		case "max_down":
			r.MaxDown = p.bounded(v, name, maxDuration)
		case "kinds":
			kinds = true
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				p.Fail(v, name, "want a list of fault kinds")
				return
			}
			for _, c := range v.Content {
				r.Kinds = append(r.Kinds, p.kind(c, name))
			}
		default:
			p.Unknown(k, name)
		}
	})
	if p.Err == nil {
		switch {
		case r.Every == 0:
			p.Fail(n, "random_faults.every", "missing")
		case r.MaxDown == 0:
			p.Fail(n, "random_faults.max_down", "missing")
		case !kinds:
			p.Fail(n, "random_faults.kinds", "missing")
		}
	}
	return r
}

func (p *parser) faults(n *yaml.Node, sc *Scenario) []Fault {
	if n.Kind != yaml.SequenceNode {
		p.Fail(n, "faults", "want a list of faults")
		return nil
	}
	var out []Fault
	for i, item := range n.Content {
		if p.Err != nil {
			break
		}
		prefix := fmt.Sprintf("faults[%d].", i)
		f := Fault{Line: item.Line, At: -1}
		var modifier, modLine string
		var modNode *yaml.Node
		p.Mapping(item, prefix, func(key string, k, v *yaml.Node) {
			name := prefix + key
			switch key {
			case "at":
				f.At = p.NonNegative(v, name)
			case "crash", "partition", "pause", "clock_jump", "stop":
				if f.Kind != "" {
					p.Fail(k, name, "a fault does one thing: %s is already given", f.Kind)
					return
				}
				f.Kind = FaultKind(key)
				f.Targets = p.targets(v, name, sc.Nodes, key == "partition")
			case "restart_after", "heal_after", "for":
				if modifier != "" {
					p.Fail(k, name, "%s is already given", modifier)
					return
				}
				modifier, modLine, modNode = key, name, v
				f.For = p.bounded(v, name, maxDuration)
			case "by":
				f.By = p.within(v, name)
				if p.Err == nil && f.By == 0 {
					p.Fail(v, name, "must not be zero")
				}
			default:
				p.Unknown(k, name)
			}
		})
		if p.Err != nil {
			break
		}
		switch {
		case f.At < 0:
			p.Fail(item, prefix+"at", "missing")
		case f.At > sc.Duration:
			p.Fail(item, prefix+"at", "%v is after the end of the run (duration %v)", f.At, sc.Duration)
		case f.Kind == "":
			p.Fail(item, prefix[:len(prefix)-1], "say what happens: crash, partition, pause, clock_jump or stop")
		case f.Kind == ClockJump && f.By == 0:
			p.Fail(item, prefix+"by", "clock_jump needs by (how far the wall clock moves)")
		case f.Kind != ClockJump && f.By != 0:
			p.Fail(item, prefix+"by", "only goes with clock_jump")
		case f.Kind == Pause && modifier != "for":
			p.Fail(item, prefix+"for", "pause needs for (how long)")
		case modifier != "" && !modifierFits(f.Kind, modifier):
			p.Fail(modNode, modLine, "does not go with %s", f.Kind)
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
		s, ok := p.Scalar(n, key)
		if ok && s != Leader {
			p.node(n, key, s, nodes)
		}
		return s
	}
	if v.Kind == yaml.SequenceNode {
		if !list {
			p.Fail(v, key, "takes one target")
			return nil
		}
		if len(v.Content) == 0 {
			p.Fail(v, key, "empty list")
		}
		var out []string
		for _, c := range v.Content {
			out = append(out, one(c))
		}
		return out
	}
	return []string{one(v)}
}
