package etcd

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// NewWithDialOptions is New with extra gRPC dial options, for tests that
// count the requests New itself makes (the public API has no gRPC types).
func NewWithDialOptions(ctx context.Context, cfg Config, opts ...grpc.DialOption) (*Client, error) {
	return newClient(ctx, cfg, opts...)
}

// MaxDelay is the cap of c's watch loops' retry backoff.
func MaxDelay(c *Client) time.Duration { return c.maxDelay }
