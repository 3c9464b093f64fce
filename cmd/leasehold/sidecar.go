package main

import (
	"context"
	"io"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/spf13/cobra"
)

// newSidecarCmd is the classic leader-elector sidecar: campaign, and serve
// who leads as {"name":"<leader>"} on GET /. leader-elector's spellings of
// its flags (--election, --election-namespace, --ttl) work too, so the
// container args of an existing pod keep working.
func newSidecarCmd() *cobra.Command {
	var httpAddr, probe string
	var o *overrides
	cmd := &cobra.Command{
		Use:   "sidecar --config FILE [flags]",
		Short: `Campaign and serve {"name":"<leader>"} on HTTP, like the leader-elector sidecar`,
		Long: `Campaign for the lock and serve who leads on --http: GET / answers
{"name":"<leader>"} (empty when nobody leads), /healthz and /metrics are the
health check and the Prometheus metrics. An application asks GET / before
doing what only the leader may do.

--probe-http serves /healthz and /metrics alone on a second address, so the
leader API can stay on localhost while the kubelet and Prometheus reach the
pod's IP. leader-elector's --election (the lock's name), --election-namespace
(kube namespace) and --ttl are accepted as they are: --ttl D sets the lease
duration to D, the renew deadline to D/2 and the retry period to D/4, as
leader-elector did (--renew-deadline and --retry-period, when given, win).

Without --id (or identity in the config), the identity is the hostname, as
leader-elector's was: apps compare GET /'s name with $HOSTNAME. Two
replicas with one hostname still never both lead (each process has its own
instance id), but their names look alike; give --id to choose.`,
		Example: `  leasehold sidecar --config leasehold.yaml --http 127.0.0.1:4040 --probe-http 10.0.0.7:4041
  leasehold sidecar --backend kube --election my-app --election-namespace prod --http localhost:4040`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return sidecarCmd(cmd.Context(), o, httpAddr, probe, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	o = addConfigFlags(fs, candidate)
	fs.StringVar(&httpAddr, "http", "127.0.0.1:4040", "serve /, /healthz and /metrics on this address")
	fs.StringVar(&probe, "probe-http", "", "also serve /healthz and /metrics alone on this address (the pod's IP, for the kubelet and Prometheus)")
	fs.DurationVar(&o.ttl, "ttl", 0, "leader-elector's lease: lease duration D, renew deadline D/2, retry period D/4 (--renew-deadline, --retry-period win)")
	o.hostIdentity = true
	fs.SetNormalizeFunc(aliases(map[string]string{
		"election": "name", "election-namespace": "namespace",
	}))
	return cmd
}

func sidecarCmd(ctx context.Context, o *overrides, httpAddr, probe string, stderr io.Writer) error {
	if err := checkHTTPFlags(httpAddr, probe); err != nil {
		return err
	}
	if httpAddr == "" {
		return usagef("--http: empty: the sidecar serves who leads; give an address such as 127.0.0.1:4040")
	}
	ss, err := o.open(ctx, stderr, nil)
	if err != nil {
		return err
	}
	defer ss.close()
	if ss.cfg.identityFromHost {
		ss.log.Warn("the identity is the hostname, as leader-elector's was (give --id to choose one): replicas sharing a hostname never both lead, but GET / cannot tell them apart")
	}
	e, err := elector.New(ss.cfg.Lease, ss.backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) { <-ctx.Done() },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(ss.base), elector.WithObserver(ss.srv.obs))
	if err != nil {
		return usagef("%v", err)
	}
	ss.srv.e.Store(e)
	if err := ss.srv.serve(ctx, httpAddr, probe); err != nil {
		return err
	}
	if err := e.Run(ctx); err != nil {
		return err
	}
	ss.log.Info("stopped on signal")
	return nil
}
