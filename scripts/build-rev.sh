#!/bin/sh
# Builds stray from a git revision, for A/B performance runs (make
# perf-milter MILTER_PERF_BASE=REV, make relay-perf RELAY_PERF_BASE=REV),
# and prints the binary's path; prints nothing when no revision is given.
#
#   scripts/build-rev.sh [REV]
set -eu
[ -n "${1:-}" ] || exit 0
GO=${GO:-go}
d=$(mktemp -d)
git -C "$(git rev-parse --show-toplevel)" archive "$1" | tar -x -C "$d"
(cd "$d" && $GO build -o "$d/stray-base" ./cmd/stray) >&2
echo "$d/stray-base"
