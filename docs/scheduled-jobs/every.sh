#!/bin/sh
# every.sh PERIOD COMMAND [ARGS...]: run COMMAND every PERIOD seconds, at
# the multiples of PERIOD since the epoch, with SLOT set to that second — a
# tiny stand-in for a cron daemon (supercronic, crond), for the examples of
# docs/scheduled-jobs.md. A run still going when the next slot is due
# delays it: runs never overlap.
set -eu
period=$1
shift
case $period in '' | *[!0-9]* | 0) echo "every.sh: PERIOD must be a whole number of seconds, got '$period'" >&2; exit 2 ;; esac
while :; do
	now=$(date +%s)
	sleep $((period - now % period))
	SLOT=$(( $(date +%s) / period * period ))
	export SLOT
	"$@" || echo "every.sh: slot $SLOT: $1 exited with status $?" >&2
done
