package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/yamlx"
	"github.com/leasehold-go/leasehold/schedule"
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
	// StartSpread: each node starts at a random instant in [b, b +
	// StartSpread), drawn from the seed, where b is one random offset in
	// [0, RetryPeriod) for all, so that every seed meets a fault at
	// another point of the leader's renewal cycle, uniformly, and --runs
	// gives a distribution, not one point. Negative means one RetryPeriod
	// (the default); 0 starts every node at once, at 0.
	StartSpread time.Duration
	// FaultJitter delays each fault of the timeline by a random time in
	// [0, FaultJitter) (default 0).
	FaultJitter time.Duration
	// FenceEvery is the mean interval of a leader's writes to the fenced
	// resource, at random instants (uniform in [0.5, 1.5) intervals, the
	// first within one interval of the start); 0 means one RetryPeriod.
	FenceEvery time.Duration
	// Watchdog models leasehold run's guard: a leader's work is stopped
	// at the end of its lease (the last acknowledged renewal's send time +
	// RenewDeadline, on its clock) unless renewed meanwhile, even while its
	// elector is stalled. A whole-process pause pauses the guard too.
	Watchdog bool

	// Store names the timing profile the file selected (store:), "" for
	// none; its values are already in the fields below.
	Store string
	// Latency is the one-way delay of a request (node → store) and, unless
	// ReplyLatency is zero or more, of a reply or watch notification
	// (store → node) too. DefaultScenario sets ReplyLatency to -1.
	Latency      time.Duration
	ReplyLatency time.Duration
	Jitter       time.Duration // extra one-way delay, uniform in [0, Jitter)
	Loss         float64       // probability a message is lost
	// Tail adds a heavy-tailed delay to each one-way message (nil: none).
	Tail *Tail
	// ReadService and WriteService are the store's own time for a Get and
	// for a Create or Update. The store serves Parallel requests at once
	// (0 means 1), first come first served: the others wait in line, so
	// load shows up as queueing. With both zero a request is answered the
	// instant it arrives.
	ReadService  time.Duration
	WriteService time.Duration
	Parallel     int
	// WatchLag delays every watch notification at the store (a watch
	// cache, a follower replica) before it goes on the network.
	WatchLag time.Duration
	// WatchIsRequest counts each watch registration as a request the
	// store serves, as Consul's blocking queries are; otherwise a watch
	// rides a stream already open (etcd, Kubernetes) and its
	// registrations are counted apart, not as requests.
	WatchIsRequest bool
	// StaleReads: a Get returns the record as it was at a random instant
	// up to StaleReads ago (uniform), as a lagging replica or a watch
	// cache would. Creates and updates stay linearizable: they compare
	// against the latest version.
	StaleReads time.Duration
	// WorkStart is how long a new leader's work takes to run once its
	// elector started leading (leasehold run starting its command). A
	// failover ends when the work runs; the work writes to the fenced
	// resource from then on.
	WorkStart time.Duration
	// WorkSigma spreads the work's start and stop times: each is drawn
	// as WorkStart (or WorkStop) · e^(WorkSigma·N(0,1)), a lognormal with
	// that median; 0 keeps them constant.
	WorkSigma float64

	Clocks []Clock // one per node, index 0 = n1
	// Identities are the nodes' identities, index 0 = n1; a node's id
	// unless the file gives it another (two nodes may share one, as two
	// processes started with the same --id do). Every boot of a node is a
	// new process with an instance of its own.
	Identities []string
	Faults     []Fault
	Random     *RandomFaults
	// Cron, when set, makes every leader run leasehold cron's scheduling
	// loop (docs/cron.md): it claims each slot of the schedule in the
	// lock's record through its Machine, runs it and marks it done.
	Cron *Cron
}

// Cron is leasehold cron's job as the simulator runs it: the schedule
// (read on each node's own wall clock), the catch-up window, what to do
// with a run cut short and with a slot due while a run is going, and how
// long a run takes (true time).
type Cron struct {
	Schedule string // schedule package syntax: "*/5 * * * *", "@every 10s"
	Timezone string // where the schedule is read; "" is UTC
	// CatchUp is --catch-up: a new leader runs the slots missed within
	// this long; negative means one period of the schedule (the default).
	CatchUp     time.Duration
	Rerun       bool // --interrupted rerun (false: skip)
	SkipOverlap bool // --overlap skip (false: wait)
	// A run takes RunTime plus uniform [0, RunSpread) of true time.
	RunTime   time.Duration
	RunSpread time.Duration
}

// maxCatchUp is leasehold cron's longest --catch-up.
const maxCatchUp = 7 * 24 * time.Hour

// parse reads the schedule in its time zone.
func (c *Cron) parse() (*schedule.Schedule, error) {
	tz := c.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, fmt.Errorf("timezone %q: not a time zone name such as UTC or Europe/Berlin", c.Timezone)
	}
	sched, err := schedule.Parse(c.Schedule, loc)
	if err != nil {
		return nil, fmt.Errorf("schedule: %v", err)
	}
	if sched.Next(epoch).IsZero() {
		return nil, fmt.Errorf("schedule %q: it never comes due", c.Schedule)
	}
	return sched, nil
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
	// Stall pauses the elector but not the leader's work: `kill -STOP`
	// of a leading `leasehold run`, whose guard and command go on.
	Stall FaultKind = "stall"
	// LatencySpike sets the one-way latency of the targets' messages (or
	// everyone's) to Fault.Latency for Fault.For.
	LatencySpike FaultKind = "latency_spike"
	// StoreDown: the store answers nobody for Fault.For; watch streams
	// break (watchers register again, one RetryPeriod later).
	StoreDown FaultKind = "store_down"
	// StoreWipe: the store loses every record and its revision counter
	// restarts, as an etcd or a Consul started without its data: versions
	// are handed out again. Watchers see the record gone.
	StoreWipe FaultKind = "store_wipe"
	// StoreRestore: the store goes back to its state Fault.By earlier,
	// records and revision counter both (restored from a backup): the
	// versions written since are handed out again, for other writes.
	// Watchers see the restored record (or none).
	StoreRestore FaultKind = "store_restore"
	// RecordDelete: the lock's record is deleted by hand; the store keeps
	// counting (no version is reused). Watchers see it gone.
	RecordDelete FaultKind = "record_delete"
)

var faultKinds = []FaultKind{Crash, Partition, Pause, ClockJump, Stop, Stall, LatencySpike, StoreDown, StoreWipe, StoreRestore, RecordDelete}

// randomKinds are the kinds random_faults may draw.
var randomKinds = []FaultKind{Crash, Partition, Pause, ClockJump, Stop, Stall, StoreDown, StoreWipe, StoreRestore, RecordDelete}

// storeFault reports whether k acts on the store, not on nodes (it takes
// no target).
func storeFault(k FaultKind) bool {
	return k == StoreDown || k == StoreWipe || k == StoreRestore || k == RecordDelete
}

// All as a latency_spike target is every node.
const All = "all"

// What a partition loses: both directions (""), or one of them.
const (
	LoseRequests = "requests" // node → store lost; replies and notifications still arrive
	LoseReplies  = "replies"  // requests reach the store (writes apply); replies and notifications are lost
)

// Leader as a fault target means whoever holds the record at that instant.
const Leader = "leader"

// Fault is one fault on the timeline.
type Fault struct {
	At      time.Duration
	Kind    FaultKind
	Targets []string      // node ids or "leader"
	For     time.Duration // crash/stop: restart after; partition: heal after; pause: length (0 = never)
	By      time.Duration // clock_jump: how far the wall clock moves; store_restore: how far back the store goes
	// NewIdentity: the node comes back from this crash or stop under a new
	// identity, as a replaced pod does (restart_identity: new, the
	// default); false keeps the identity (a restarted process: it still
	// has a new instance, so it waits out its predecessor's lease).
	NewIdentity bool
	// Latency is a latency_spike's one-way latency, in both directions.
	Latency time.Duration
	// Lose is what a partition loses: "" both directions, LoseRequests
	// or LoseReplies.
	Lose string
	Line int
}

// Tail is a heavy-tailed extra one-way delay: with probability P (0
// means 1) a message takes a draw of Dist on top of its latency and
// jitter, at most Max. Lognormal draws are Median·e^(Sigma·N(0,1));
// Pareto draws are Min / U^(1/Alpha) with U uniform in (0, 1].
type Tail struct {
	Dist   string // lognormal or pareto
	P      float64
	Median time.Duration // lognormal
	Sigma  float64       // lognormal
	Min    time.Duration // pareto
	Alpha  float64       // pareto
	Max    time.Duration // cap on one draw (0 means maxLease)
}

// RandomFaults draws faults from the seed: one about every Every (uniform
// in [Every/2, 3·Every/2)), of a kind drawn from Kinds, lasting up to MaxDown.
// A store_restore goes back uniform [1s, MaxBack) (0: MaxDown).
type RandomFaults struct {
	Every   time.Duration
	Kinds   []FaultKind
	MaxDown time.Duration
	MaxBack time.Duration
}

// NodeID names node i (0-based): n1, n2, ...
func NodeID(i int) string { return "n" + strconv.Itoa(i+1) }

// DefaultScenario returns the values used for keys a file leaves out.
func DefaultScenario() Scenario {
	return Scenario{
		Name: "unnamed", Nodes: 3, Duration: 10 * time.Minute, Seed: 1,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		ReleaseOnCancel: true, Watch: true, Latency: time.Millisecond, ReplyLatency: -1, StartSpread: -1,
		Parallel: 1,
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
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		return nil, errors.New("the scenario is empty") // nothing, comments, a bare "---" or null
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the scenario must be a mapping of keys", root.Line)
	}
	p := parser{lines: map[string]int{}}
	var clocks, identities *yaml.Node
	var store *yaml.Node
	given := map[string]bool{} // profile keys the file sets
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
				p.lines["lease."+key] = v.Line
				switch key {
				case "duration":
					sc.LeaseDuration = p.positive(v, "lease."+key, maxLease)
				case "renew_deadline":
					sc.RenewDeadline = p.positive(v, "lease."+key, maxLease)
				case "retry_period":
					sc.RetryPeriod = p.positive(v, "lease."+key, maxLease)
				case "release_on_cancel":
					sc.ReleaseOnCancel = p.Boolean(v, "lease."+key)
				default:
					p.Unknown(k, "lease."+key)
				}
			})
		case "watch":
			sc.Watch = p.Boolean(v, key)
		case "start_spread":
			sc.StartSpread = p.nonNegative(v, key, maxLease)
		case "watchdog":
			sc.Watchdog = p.Boolean(v, key)
		case "fence_every":
			sc.FenceEvery = p.positive(v, key, maxLease)
		case "fault_jitter":
			sc.FaultJitter = p.nonNegative(v, key, maxLease)
		case "work_stop":
			given[key] = true
			sc.WorkStop = p.nonNegative(v, key, maxLease)
		case "work_start":
			given[key] = true
			sc.WorkStart = p.nonNegative(v, key, maxLease)
		case "work_sigma":
			given[key] = true
			sc.WorkSigma = p.Float(v, key, 0, 3)
		case "store":
			store = v
		case "network":
			latency := sc.Latency
			var req, rep time.Duration
			reqSet, repSet := false, false
			p.Mapping(v, "network.", func(key string, k, v *yaml.Node) {
				name := "network." + key
				given[name] = true
				switch key {
				case "latency":
					latency = p.nonNegative(v, name, maxLease)
				case "request_latency":
					reqSet = true
					req = p.nonNegative(v, name, maxLease)
				case "reply_latency":
					repSet = true
					rep = p.nonNegative(v, name, maxLease)
				case "jitter":
					sc.Jitter = p.nonNegative(v, name, maxLease)
				case "loss":
					sc.Loss = p.Float(v, name, 0, 0.99)
				case "tail":
					sc.Tail = p.tail(v, name)
				default:
					p.Unknown(k, name)
				}
			})
			// Each direction: its own key, else latency (given or default).
			if given["network.latency"] || reqSet || repSet {
				sc.Latency, sc.ReplyLatency = latency, latency
				if reqSet {
					sc.Latency = req
				}
				if repSet {
					sc.ReplyLatency = rep
				}
			}
		case "service":
			p.Mapping(v, "service.", func(key string, k, v *yaml.Node) {
				name := "service." + key
				given[name] = true
				switch key {
				case "read":
					sc.ReadService = p.nonNegative(v, name, maxLease)
				case "write":
					sc.WriteService = p.nonNegative(v, name, maxLease)
				case "parallel":
					sc.Parallel = p.Integer(v, name, 1, 1000)
				case "watch_lag":
					sc.WatchLag = p.nonNegative(v, name, maxLease)
				case "watch_is_request":
					sc.WatchIsRequest = p.Boolean(v, name)
				case "stale_reads":
					sc.StaleReads = p.nonNegative(v, name, maxLease)
				default:
					p.Unknown(k, name)
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
		case "cron":
			sc.Cron = p.cron(v)
		default:
			p.Unknown(k, key)
		}
	})
	if p.Err == nil && store != nil {
		name := p.Str(store, "store")
		prof, ok := Profiles[name]
		if p.Err == nil && !ok {
			p.Fail(store, "store", "no timing profile %q (want one of %s)", name, profileNames())
		}
		sc.Store = name
		prof.applyTo(&sc, given)
	}
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

// timing checks the lease timing with the elector's own rule
// (elector.Config.Validate: the only copy of it) and says what is wrong in
// the file's words: the Config fields become the keys that set them, and
// the line of the first of them the file sets leads.
func (p *parser) timing(sc *Scenario) error {
	ce := sc.timing()
	if ce == nil {
		return nil
	}
	var pairs []string
	line := ""
	for _, f := range ce.Fields {
		k, ok := leaseKeys[f]
		if !ok {
			continue
		}
		pairs = append(pairs, f, k)
		if l := p.lines[k]; l > 0 && line == "" {
			line = fmt.Sprintf("line %d: ", l)
		}
	}
	return errors.New(line + strings.NewReplacer(pairs...).Replace(ce.Msg))
}

// leaseKeys maps the elector.Config fields the scenario sets to its keys.
var leaseKeys = map[string]string{
	"LeaseDuration": "lease.duration",
	"RenewDeadline": "lease.renew_deadline",
	"RetryPeriod":   "lease.retry_period",
}

// Bounds that keep every instant of a run, on every node's clock, far from
// overflowing a time.Duration.
const (
	maxDuration = 1000 * time.Hour
	maxLease    = 24 * time.Hour
)

// positive reads a duration above zero and at most limit.
func (p *parser) positive(v *yaml.Node, key string, limit time.Duration) time.Duration {
	d := p.Duration(v, key)
	if p.Err == nil && (d <= 0 || d > limit) {
		p.Fail(v, key, "must be between 0 and %v, got %v", limit, d)
	}
	return d
}

// nonNegative reads a duration from zero to limit.
func (p *parser) nonNegative(v *yaml.Node, key string, limit time.Duration) time.Duration {
	d := p.NonNegative(v, key)
	if p.Err == nil && d > limit {
		p.Fail(v, key, "must be at most %v, got %v", limit, d)
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
	lines map[string]int // line of each lease.* key given, for the timing rule
}

// nodeIndex is the index of the node named id among nodes, -1 if none.
func nodeIndex(id string, nodes int) int {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "n"))
	if err != nil || n < 1 || n > nodes || NodeID(n-1) != id {
		return -1
	}
	return n - 1
}

// node resolves a node id written at n; -1 if it does not exist.
func (p *parser) node(n *yaml.Node, key, id string, nodes int) int {
	if p.Err != nil {
		return -1
	}
	if i := nodeIndex(id, nodes); i >= 0 {
		return i
	}
	p.Fail(n, key, "no node %q (the scenario has n1..n%d)", id, nodes)
	return -1
}

func (p *parser) kind(n *yaml.Node, key string) FaultKind {
	s, _ := p.Scalar(n, key)
	switch {
	case p.Err != nil:
	case FaultKind(s) == LatencySpike:
		p.Fail(n, key, "latency_spike is not drawn at random (it needs a latency): put it on the timeline")
	case !slices.Contains(randomKinds, FaultKind(s)):
		p.Fail(n, key, "unknown fault kind %q (want one of %s)", s, kindList(randomKinds))
	}
	return FaultKind(s)
}

func kindList(ks []FaultKind) string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return strings.Join(out, ", ")
}

// tail reads network.tail.
func (p *parser) tail(n *yaml.Node, prefix string) *Tail {
	t := &Tail{}
	given := map[string]*yaml.Node{}
	p.Mapping(n, prefix+".", func(key string, k, v *yaml.Node) {
		name := prefix + "." + key
		given[key] = v
		switch key {
		case "dist":
			t.Dist = p.Str(v, name)
			if p.Err == nil && t.Dist != "lognormal" && t.Dist != "pareto" {
				p.Fail(v, name, "want lognormal or pareto, got %q", t.Dist)
			}
		case "p":
			t.P = p.Float(v, name, 0.000001, 1)
		case "median":
			t.Median = p.positive(v, name, maxLease)
		case "sigma":
			t.Sigma = p.Float(v, name, 0.01, 10)
		case "min":
			t.Min = p.positive(v, name, maxLease)
		case "alpha":
			t.Alpha = p.Float(v, name, 0.1, 100)
		case "max":
			t.Max = p.positive(v, name, maxLease)
		default:
			p.Unknown(k, name)
		}
	})
	if p.Err != nil {
		return t
	}
	need := func(keys ...string) {
		for _, k := range keys {
			if given[k] == nil && p.Err == nil {
				p.Fail(n, prefix+"."+k, "missing (a %s tail needs %s)", t.Dist, strings.Join(keys, " and "))
			}
		}
	}
	refuse := func(keys ...string) {
		for _, k := range keys {
			if v := given[k]; v != nil && p.Err == nil {
				p.Fail(v, prefix+"."+k, "does not go with a %s tail", t.Dist)
			}
		}
	}
	switch t.Dist {
	case "":
		p.Fail(n, prefix+".dist", "missing (lognormal or pareto)")
	case "lognormal":
		need("median", "sigma")
		refuse("min", "alpha")
	case "pareto":
		need("min", "alpha")
		refuse("median", "sigma")
	}
	return t
}

// cron reads the cron: block.
func (p *parser) cron(n *yaml.Node) *Cron {
	c := &Cron{CatchUp: -1, RunTime: time.Second}
	var spec, tz *yaml.Node
	p.Mapping(n, "cron.", func(key string, k, v *yaml.Node) {
		name := "cron." + key
		switch key {
		case "schedule":
			spec = v
			c.Schedule = p.Str(v, name)
		case "timezone":
			tz = v
			c.Timezone = p.Str(v, name)
		case "catch_up":
			c.CatchUp = p.nonNegative(v, name, maxCatchUp)
		case "interrupted":
			switch p.Str(v, name) {
			case "skip":
			case "rerun":
				c.Rerun = true
			default:
				if p.Err == nil {
					p.Fail(v, name, "want skip or rerun")
				}
			}
		case "overlap":
			switch p.Str(v, name) {
			case "wait":
			case "skip":
				c.SkipOverlap = true
			default:
				if p.Err == nil {
					p.Fail(v, name, "want wait or skip")
				}
			}
		case "run_time":
			c.RunTime = p.nonNegative(v, name, maxLease)
		case "run_spread":
			c.RunSpread = p.nonNegative(v, name, maxLease)
		default:
			p.Unknown(k, name)
		}
	})
	if p.Err != nil {
		return c
	}
	if spec == nil {
		p.Fail(n, "cron.schedule", "missing (for example \"@every 10s\" or \"*/5 * * * *\")")
		return c
	}
	if _, err := c.parse(); err != nil {
		at, key := spec, "cron.schedule"
		if strings.HasPrefix(err.Error(), "timezone") {
			at, key = tz, "cron.timezone"
		}
		msg := strings.TrimPrefix(err.Error(), "timezone ")
		if key == "cron.schedule" {
			_, msg, _ = strings.Cut(msg, ": ")
		}
		p.Fail(at, key, "%s", msg)
	}
	return c
}

func (p *parser) random(n *yaml.Node) *RandomFaults {
	r := &RandomFaults{}
	kinds := false
	var maxBack *yaml.Node
	p.Mapping(n, "random_faults.", func(key string, k, v *yaml.Node) {
		name := "random_faults." + key
		switch key {
		case "every":
			r.Every = p.positive(v, name, maxDuration)
		case "max_down":
			r.MaxDown = p.positive(v, name, maxDuration)
		case "max_back":
			maxBack = k
			r.MaxBack = p.positive(v, name, maxDuration)
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
		case maxBack != nil && !slices.Contains(r.Kinds, StoreRestore):
			p.Fail(maxBack, "random_faults.max_back", "only goes with store_restore among the kinds")
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
		f := Fault{Line: item.Line, At: -1, NewIdentity: true}
		identitySet, latencySet := false, false
		var loseNode *yaml.Node
		var modifier, modLine string
		var modNode, byNode *yaml.Node
		p.Mapping(item, prefix, func(key string, k, v *yaml.Node) {
			name := prefix + key
			switch key {
			case "at":
				f.At = p.NonNegative(v, name)
			case "crash", "partition", "pause", "clock_jump", "stop", "stall", "latency_spike", "store_down",
				"store_wipe", "store_restore", "record_delete":
				if f.Kind != "" {
					p.Fail(k, name, "a fault does one thing: %s is already given", f.Kind)
					return
				}
				f.Kind = FaultKind(key)
				switch f.Kind {
				case StoreDown:
					if !p.Boolean(v, name) && p.Err == nil {
						p.Fail(v, name, "want true (the store goes down for `for`)")
					}
				case StoreWipe, StoreRestore, RecordDelete:
					if !p.Boolean(v, name) && p.Err == nil {
						p.Fail(v, name, "want true (it happens to the store, not to a node)")
					}
				case LatencySpike:
					if v.Kind == yaml.ScalarNode && v.Value == All {
						f.Targets = []string{All}
						return
					}
					f.Targets = p.targets(v, name, sc.Nodes, true)
				default:
					f.Targets = p.targets(v, name, sc.Nodes, key == "partition")
				}
			case "latency":
				latencySet = true
				f.Latency = p.nonNegative(v, name, maxLease)
			case "lose":
				f.Lose = p.Str(v, name)
				if p.Err == nil && f.Lose != LoseRequests && f.Lose != LoseReplies && f.Lose != "both" {
					p.Fail(v, name, "want requests, replies or both")
				}
				if f.Lose == "both" {
					f.Lose = ""
				}
				loseNode = v
			case "restart_after", "heal_after", "for":
				if modifier != "" {
					p.Fail(k, name, "%s is already given", modifier)
					return
				}
				modifier, modLine, modNode = key, name, v
				f.For = p.positive(v, name, maxDuration)
			case "restart_identity":
				identitySet = true
				switch p.Str(v, name) {
				case "new":
					f.NewIdentity = true
				case "same":
					f.NewIdentity = false
				default:
					if p.Err == nil {
						p.Fail(v, name, "want same or new")
					}
				}
			case "by":
				byNode = v
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
			p.Fail(item, prefix[:len(prefix)-1], "say what happens: %s", kindList(faultKinds))
		case f.Kind == ClockJump && f.By == 0:
			p.Fail(item, prefix+"by", "clock_jump needs by (how far the wall clock moves)")
		case f.Kind == StoreRestore && f.By == 0:
			p.Fail(item, prefix+"by", "store_restore needs by (how far back in time the store goes)")
		case f.Kind == StoreRestore && f.By < 0:
			p.Fail(byNode, prefix+"by", "must be positive (how far back in time the store goes), got %v", f.By)
		case f.Kind != ClockJump && f.Kind != StoreRestore && f.By != 0:
			p.Fail(byNode, prefix+"by", "only goes with clock_jump or store_restore")
		case identitySet && f.Kind != Crash && f.Kind != Stop:
			p.Fail(item, prefix+"restart_identity", "only goes with crash or stop")
		case (f.Kind == Pause || f.Kind == Stall || f.Kind == LatencySpike || f.Kind == StoreDown) && modifier != "for":
			p.Fail(item, prefix+"for", "%s needs for (how long)", f.Kind)
		case f.Kind == LatencySpike && !latencySet:
			p.Fail(item, prefix+"latency", "latency_spike needs latency (the one-way latency during the spike)")
		case f.Kind != LatencySpike && latencySet:
			p.Fail(item, prefix+"latency", "only goes with latency_spike")
		case f.Kind != Partition && loseNode != nil:
			p.Fail(loseNode, prefix+"lose", "only goes with partition")
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
		return k == Pause || k == Stall || k == LatencySpike || k == StoreDown
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

// ErrInvalidScenario is wrapped by every error Validate returns.
var ErrInvalidScenario = errors.New("invalid scenario")

// invalid is a Validate error; it wraps ErrInvalidScenario and, for the
// lease timing, the elector's *ConfigError.
type invalid struct {
	msg string
	ce  *elector.ConfigError
}

func (e *invalid) Error() string { return "sim: " + ErrInvalidScenario.Error() + ": " + e.msg }

func (e *invalid) Unwrap() []error {
	if e.ce != nil {
		return []error{ErrInvalidScenario, e.ce}
	}
	return []error{ErrInvalidScenario}
}

// config returns the elector configuration node i (0-based) campaigns
// with; each boot adds an Instance of its own.
func (sc *Scenario) config(i int) elector.Config {
	id := NodeID(i)
	if i < len(sc.Identities) {
		id = sc.Identities[i]
	}
	return elector.Config{
		Identity: id, LeaseDuration: sc.LeaseDuration, RenewDeadline: sc.RenewDeadline,
		RetryPeriod: sc.RetryPeriod, ReleaseOnCancel: sc.ReleaseOnCancel,
	}
}

// timing checks the lease timing with elector.Config.Validate; nil if it
// holds. The identity is checked on its own (Identities).
func (sc *Scenario) timing() *elector.ConfigError {
	cfg := sc.config(0)
	cfg.Identity = "n1"
	var ce *elector.ConfigError
	if err := cfg.Validate(); errors.As(err, &ce) {
		return ce
	}
	return nil
}

// Validate checks everything Run relies on, with the same rules as the
// scenario file (docs/simulator.md), in the Scenario's own field names:
// a scenario built in code goes through it as a parsed one does. The lease
// timing is elector.Config.Validate's rule.
func (sc *Scenario) Validate() error {
	bad := func(format string, args ...any) error { return &invalid{msg: fmt.Sprintf(format, args...)} }
	between := func(name string, d, lo, hi time.Duration) error {
		if d < lo || d > hi {
			return bad("%s (%v) must be from %v to %v", name, d, lo, hi)
		}
		return nil
	}
	if sc == nil {
		return bad("no scenario")
	}
	if sc.Nodes < 1 || sc.Nodes > 1000 {
		return bad("Nodes (%d) must be from 1 to 1000", sc.Nodes)
	}
	for _, c := range []struct {
		name   string
		d      time.Duration
		lo, hi time.Duration
	}{
		{"Duration", sc.Duration, 1, maxDuration},
		{"LeaseDuration", sc.LeaseDuration, 1, maxLease},
		{"RenewDeadline", sc.RenewDeadline, 1, maxLease},
		{"RetryPeriod", sc.RetryPeriod, 1, maxLease},
		{"WorkStop", sc.WorkStop, 0, maxLease},
		{"StartSpread", max(sc.StartSpread, 0), 0, maxLease},
		{"FaultJitter", sc.FaultJitter, 0, maxLease},
		{"FenceEvery", sc.FenceEvery, 0, maxLease},
		{"Latency", sc.Latency, 0, maxLease},
		{"ReplyLatency", max(sc.ReplyLatency, 0), 0, maxLease},
		{"Jitter", sc.Jitter, 0, maxLease},
		{"ReadService", sc.ReadService, 0, maxLease},
		{"WriteService", sc.WriteService, 0, maxLease},
		{"WatchLag", sc.WatchLag, 0, maxLease},
		{"StaleReads", sc.StaleReads, 0, maxLease},
		{"WorkStart", sc.WorkStart, 0, maxLease},
	} {
		if err := between(c.name, c.d, c.lo, c.hi); err != nil {
			return err
		}
	}
	if ce := sc.timing(); ce != nil {
		return &invalid{msg: ce.Msg, ce: ce}
	}
	if !(sc.Loss >= 0 && sc.Loss <= 0.99) {
		return bad("Loss (%v) must be from 0 to 0.99", sc.Loss)
	}
	if !(sc.WorkSigma >= 0 && sc.WorkSigma <= 3) {
		return bad("WorkSigma (%v) must be from 0 to 3", sc.WorkSigma)
	}
	if sc.Parallel < 0 || sc.Parallel > 1000 {
		return bad("Parallel (%d) must be from 0 to 1000", sc.Parallel)
	}
	if _, ok := Profiles[sc.Store]; sc.Store != "" && !ok {
		return bad("Store: no timing profile %q (want one of %s)", sc.Store, profileNames())
	}
	if t := sc.Tail; t != nil {
		switch {
		case t.Dist != "lognormal" && t.Dist != "pareto":
			return bad("Tail.Dist %q: want lognormal or pareto", t.Dist)
		case !(t.P >= 0 && t.P <= 1):
			return bad("Tail.P (%v) must be from 0 to 1", t.P)
		case t.Dist == "lognormal" && (t.Median <= 0 || t.Median > maxLease || !(t.Sigma >= 0.01 && t.Sigma <= 10)):
			return bad("Tail: a lognormal tail needs Median in (0, %v] and Sigma from 0.01 to 10, got %v and %v", maxLease, t.Median, t.Sigma)
		case t.Dist == "pareto" && (t.Min <= 0 || t.Min > maxLease || !(t.Alpha >= 0.1 && t.Alpha <= 100)):
			return bad("Tail: a pareto tail needs Min in (0, %v] and Alpha from 0.1 to 100, got %v and %v", maxLease, t.Min, t.Alpha)
		case t.Max < 0 || t.Max > maxLease:
			return bad("Tail.Max (%v) must be from 0 to %v", t.Max, maxLease)
		}
	}
	if len(sc.Clocks) != sc.Nodes {
		return bad("Clocks has %d entries, want one per node (%d)", len(sc.Clocks), sc.Nodes)
	}
	for i, c := range sc.Clocks {
		if !(c.Rate >= 0.01 && c.Rate <= 100) {
			return bad("Clocks[%d].Rate (%v) must be from 0.01 to 100", i, c.Rate)
		}
		if err := between(fmt.Sprintf("Clocks[%d].Offset", i), c.Offset, -maxDuration, maxDuration); err != nil {
			return err
		}
	}
	if len(sc.Identities) != 0 && len(sc.Identities) != sc.Nodes {
		return bad("Identities has %d entries, want none or one per node (%d)", len(sc.Identities), sc.Nodes)
	}
	for i, id := range sc.Identities {
		if id == "" {
			return bad("Identities[%d] must not be empty", i)
		}
	}
	for i, f := range sc.Faults {
		if err := sc.validateFault(f); err != nil {
			return bad("Faults[%d]%s", i, err.Error())
		}
	}
	if c := sc.Cron; c != nil {
		if _, err := c.parse(); err != nil {
			return bad("Cron: %v", err)
		}
		if c.CatchUp > maxCatchUp {
			return bad("Cron.CatchUp (%v) must be at most %v (negative: one period)", c.CatchUp, maxCatchUp)
		}
		if err := between("Cron.RunTime", c.RunTime, 0, maxLease); err != nil {
			return err
		}
		if err := between("Cron.RunSpread", c.RunSpread, 0, maxLease); err != nil {
			return err
		}
	}
	if r := sc.Random; r != nil {
		if err := between("Random.Every", r.Every, 1, maxDuration); err != nil {
			return err
		}
		if err := between("Random.MaxDown", r.MaxDown, 1, maxDuration); err != nil {
			return err
		}
		if err := between("Random.MaxBack", r.MaxBack, 0, maxDuration); err != nil {
			return err
		}
		if len(r.Kinds) == 0 {
			return bad("Random.Kinds is empty")
		}
		for i, k := range r.Kinds {
			switch {
			case k == LatencySpike:
				return bad("Random.Kinds[%d]: latency_spike cannot be drawn at random (it needs a latency)", i)
			case !slices.Contains(randomKinds, k):
				return bad("Random.Kinds[%d]: unknown fault kind %q", i, k)
			}
		}
	}
	return nil
}

// validateFault checks one fault; the error starts with the field
// (".At: ..."), to follow "Faults[i]".
func (sc *Scenario) validateFault(f Fault) error {
	switch {
	case f.At < 0 || f.At > sc.Duration:
		return fmt.Errorf(".At (%v) must be from 0 to the end of the run (Duration %v)", f.At, sc.Duration)
	case !slices.Contains(faultKinds, f.Kind):
		return fmt.Errorf(".Kind: unknown fault kind %q", f.Kind)
	case storeFault(f.Kind) && len(f.Targets) != 0:
		return fmt.Errorf(".Targets: %s takes none (it is the store's)", f.Kind)
	case !storeFault(f.Kind) && len(f.Targets) == 0:
		return errors.New(".Targets is empty")
	case len(f.Targets) > 1 && f.Kind != Partition && f.Kind != LatencySpike:
		return fmt.Errorf(".Targets: %s takes one target, got %d", f.Kind, len(f.Targets))
	case f.For < 0 || f.For > maxDuration:
		return fmt.Errorf(".For (%v) must be from 0 to %v", f.For, maxDuration)
	case (f.Kind == Pause || f.Kind == Stall || f.Kind == LatencySpike || f.Kind == StoreDown) && f.For == 0:
		return fmt.Errorf(".For: a %s needs a length", f.Kind)
	case f.Latency < 0 || f.Latency > maxLease:
		return fmt.Errorf(".Latency (%v) must be from 0 to %v", f.Latency, maxLease)
	case f.Kind != LatencySpike && f.Latency != 0:
		return errors.New(".Latency only goes with latency_spike")
	case f.Lose != "" && f.Lose != LoseRequests && f.Lose != LoseReplies:
		return fmt.Errorf(".Lose %q: want \"\", %q or %q", f.Lose, LoseRequests, LoseReplies)
	case f.Lose != "" && f.Kind != Partition:
		return errors.New(".Lose only goes with partition")
	case f.Kind == ClockJump && f.For != 0:
		return errors.New(".For does not go with clock_jump")
	case f.Kind == ClockJump && (f.By == 0 || f.By < -maxDuration || f.By > maxDuration):
		return fmt.Errorf(".By (%v) must be nonzero and within ±%v", f.By, maxDuration)
	case f.Kind == StoreRestore && (f.By <= 0 || f.By > maxDuration):
		return fmt.Errorf(".By (%v) must be from 0 to %v (how far back the store goes)", f.By, maxDuration)
	case storeFault(f.Kind) && f.Kind != StoreDown && f.For != 0:
		return fmt.Errorf(".For does not go with %s", f.Kind)
	case f.Kind != ClockJump && f.Kind != StoreRestore && f.By != 0:
		return errors.New(".By only goes with clock_jump or store_restore")
	}
	for j, t := range f.Targets {
		if t == Leader || t == All && f.Kind == LatencySpike && len(f.Targets) == 1 {
			continue
		}
		if nodeIndex(t, sc.Nodes) < 0 {
			return fmt.Errorf(".Targets[%d]: no node %q (the scenario has n1..n%d)", j, t, sc.Nodes)
		}
	}
	return nil
}
