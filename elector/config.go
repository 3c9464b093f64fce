package elector

import (
	"fmt"
	"time"
)

// DefaultJitterFactor widens a follower's poll interval to a random value in
// [RetryPeriod, RetryPeriod×(1+JitterFactor)), as client-go does, so that
// candidates do not hit the store in lockstep.
const DefaultJitterFactor = 1.2

// Config holds the timing and identity of one candidate.
//
// The three durations follow client-go's leaderelection meaning:
// LeaseDuration is how long a follower waits, from the moment it observed the
// last change of the record, before it may take the lock over; RenewDeadline
// is how long a leader keeps leading without a successful renewal;
// RetryPeriod is the interval between renewals and between follower polls.
type Config struct {
	// Identity names this candidate in the record. It must be unique among
	// the candidates of a lock.
	Identity string
	// Instance tells apart two processes that use the same Identity (a
	// restarted pod, or a copy started by mistake). It is stored in the
	// record next to the holder; a record naming this Identity with another
	// Instance is another process's lease and is waited out like any other.
	// New fills in a random one when it is empty; a Machine whose Instance
	// is empty takes every record naming its Identity as its own.
	Instance string
	// LeaseDuration is written into the record and bounds takeovers.
	LeaseDuration time.Duration
	// RenewDeadline is how long a leader's lease stays valid, measured on
	// its own monotonic clock from the send time of its last successful
	// write. It must be shorter than LeaseDuration: the leader stops before
	// any follower may start.
	RenewDeadline time.Duration
	// RetryPeriod is the renewal interval and the base poll interval.
	RetryPeriod time.Duration
	// JitterFactor widens follower polls; 0 means DefaultJitterFactor.
	JitterFactor float64
	// ReleaseOnCancel makes Run write the record with an empty holder when
	// its context is cancelled while leading, so a follower takes over at
	// once instead of after LeaseDuration.
	ReleaseOnCancel bool
}

// MaxLeaseDuration bounds LeaseDuration (and so the other two durations).
// A longer lease is certainly a mistake (a unit typo), and the bound keeps
// every record's lease far inside what the stored formats and the monotonic
// clock arithmetic represent, so no configuration can write a record that
// candidates cannot read back.
const MaxLeaseDuration = 7 * 24 * time.Hour

// DefaultConfig returns working values for a candidate named identity:
// 15s lease, 10s renew deadline, 2s retry period, release on cancel.
func DefaultConfig(identity string) Config {
	return Config{
		Identity:        identity,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		JitterFactor:    DefaultJitterFactor,
		ReleaseOnCancel: true,
	}
}

// jitter returns the effective jitter factor.
func (c Config) jitter() float64 {
	if c.JitterFactor == 0 {
		return DefaultJitterFactor
	}
	return c.JitterFactor
}

// Validate checks the identity and the timing rule
// MaxLeaseDuration ≥ LeaseDuration > RenewDeadline > max(1.2, JitterFactor) × RetryPeriod > 0.
// Every error wraps ErrInvalidConfig and names the fields and values
// involved; it is a *ConfigError, so callers that spell the fields
// differently (config file keys, flags) can say which ones.
func (c Config) Validate() error {
	bad := func(fields []string, format string, args ...any) error {
		return &ConfigError{Fields: fields, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.Identity == "":
		return bad([]string{"Identity"}, "Identity must not be empty")
	case c.RetryPeriod <= 0:
		return bad([]string{"RetryPeriod"}, "RetryPeriod must be positive, got %v", c.RetryPeriod)
	case c.JitterFactor < 0:
		return bad([]string{"JitterFactor"}, "JitterFactor must not be negative, got %v", c.JitterFactor)
	case c.LeaseDuration > MaxLeaseDuration:
		return bad([]string{"LeaseDuration"}, "LeaseDuration (%v) must be at most %v", c.LeaseDuration, MaxLeaseDuration)
	case c.LeaseDuration <= c.RenewDeadline:
		return bad([]string{"LeaseDuration", "RenewDeadline"}, "LeaseDuration (%v) must be greater than RenewDeadline (%v)", c.LeaseDuration, c.RenewDeadline)
	}
	factor := max(DefaultJitterFactor, c.jitter())
	if min := time.Duration(float64(c.RetryPeriod) * factor); c.RenewDeadline <= min {
		return bad([]string{"RenewDeadline", "RetryPeriod"}, "RenewDeadline (%v) must be greater than %g × RetryPeriod (%v) = %v",
			c.RenewDeadline, factor, c.RetryPeriod, min)
	}
	return nil
}

// ConfigError is what Validate returns: the Config fields involved, by
// their Go names, and a message that names them and their values. It wraps
// ErrInvalidConfig.
type ConfigError struct {
	Fields []string
	Msg    string
}

func (e *ConfigError) Error() string { return ErrInvalidConfig.Error() + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalidConfig) hold.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
