#!/bin/sh
# Regenerates the sweep figures of docs/timing.md: the tables (*.txt) and
# plots (*.svg) in this directory. Run from the repository's root:
#   sh docs/timing/generate.sh
# The same commands give the same numbers (the sweep is deterministic).
set -eu
lh="go run ./cmd/leasehold"
out=docs/timing
# The sweep of the tables: lease durations, two renew deadlines, two retry
# periods, watching and polling, under crashes, graceful stops, partitions
# and pauses, on the etcd profile.
grid="--lease-duration 5s,15s,30s,60s --renew-deadline 1/2,2/3 --retry-period 0.1,0.2 --watch on,off --seeds 200"
$lh bench sweep --store etcd $grid >$out/sweep.txt
# The plots: the same grid on each store, with a controller's constraints
# (tradeoff-STORE.svg and its table tradeoff-STORE.txt; handoff.svg, the
# same from each run).
for store in etcd consul kube; do
	$lh bench sweep --store $store $grid --recommend --max-failover 20s --max-requests-per-sec 1 --tolerate-pause 5s \
		--svg $out >$out/tradeoff-$store.txt
done
# Three common cases, each a grid and its constraints.
$lh bench sweep --store kube --lease-duration 15s,30s,45s,60s --renew-deadline 2/3,0.8 --retry-period 0.1,2/15 --seeds 200 \
	--recommend --max-failover 60s --max-requests-per-sec 2 --tolerate-store-outage 15s --tolerate-pause 5s >$out/controller.txt
$lh bench sweep --store etcd --lease-duration 30s,60s,120s --renew-deadline 1/2,2/3 --retry-period 0.1,2/15 --seeds 200 \
	--recommend --max-failover 2m --max-requests-per-sec 0.5 --tolerate-pause 20s >$out/cron-job.txt
$lh bench sweep --store etcd --lease-duration 2s,3s,5s --renew-deadline 1/2,2/3 --retry-period 0.1,2/15 --seeds 200 \
	--faults crash,stop,partition --recommend --max-failover 3s --tolerate-pause 500ms --tolerate-rate-skew 1.2 >$out/latency-sensitive.txt
