#!/bin/sh
# claim.sh URL JOB COMMAND [ARGS...]: claim the slot $SLOT (seconds since
# the epoch, as every.sh sets it) of JOB from the leasehold sidecar at URL,
# run COMMAND only if the claim is granted (200), then mark the slot done.
# 409 (claimed before, by anyone) and 503 (this replica does not lead, or
# the claim could not be written) mean: do not run it. The app-side half
# of docs/cron.md's "slot claims over HTTP".
set -eu
url=$1 job=$2
shift 2
slot=$(date -u -d "@$SLOT" +%Y-%m-%dT%H:%M:%SZ)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "$url/claim?job=$job&slot=$slot") || code=000
case $code in
200) ;;
409 | 503) exit 0 ;;
*) echo "claim.sh: slot $slot: the sidecar answered $code: not running" >&2; exit 0 ;;
esac
status=0
LEASEHOLD_SLOT=$slot "$@" || status=$?
curl -s -o /dev/null --max-time 5 -X POST "$url/done?job=$job&slot=$slot" || true
exit $status
