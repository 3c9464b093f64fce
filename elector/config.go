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
// LeaseDuration > RenewDeadline > max(1.2, JitterFactor) × RetryPeriod > 0. Every error
// wraps ErrInvalidConfig and names the fields and values involved.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Identity == "":
		return bad("Identity must not be empty")
	case c.RetryPeriod <= 0:
		return bad("RetryPeriod must be positive, got %v", c.RetryPeriod)
	case c.JitterFactor < 0:
		return bad("JitterFactor must not be negative, got %v", c.JitterFactor)
	case c.LeaseDuration <= c.RenewDeadline:
		return bad("LeaseDuration (%v) must be greater than RenewDeadline (%v)", c.LeaseDuration, c.RenewDeadline)
	}
	factor := max(DefaultJitterFactor, c.jitter())
	if min := time.Duration(float64(c.RetryPeriod) * factor); c.RenewDeadline <= min {
		return bad("RenewDeadline (%v) must be greater than %g × RetryPeriod (%v) = %v",
			c.RenewDeadline, factor, c.RetryPeriod, min)
	}
	return nil
}
