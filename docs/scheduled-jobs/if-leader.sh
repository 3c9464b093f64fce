#!/bin/sh
# if-leader.sh URL IDENTITY COMMAND [ARGS...]: run COMMAND only if the
# leasehold sidecar at URL says IDENTITY leads; otherwise exit 0 without
# running it. The sidecar pattern of docs/scheduled-jobs.md: the app asks
# before each run of a scheduled job.
set -eu
url=$1 id=$2
shift 2
answer=$(curl -fsS --max-time 2 "$url") || { echo "if-leader.sh: no answer from $url: skipping" >&2; exit 0; }
if [ "$answer" = "{\"name\":\"$id\"}" ]; then
	exec "$@"
fi
