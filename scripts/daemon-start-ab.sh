#!/bin/sh
# A/B of a daemon's start with a large known file (BenchmarkNewWithLargeKnownFile
# in internal/daemon), in alternating rounds: A is the commit given (default
# the one before issue 12's knowledge fix), B the working tree. Prints each
# round's ns/op and the medians and their ratio B/A.
#
#   scripts/daemon-start-ab.sh [A-COMMIT] [ROUNDS]
set -eu
A=${1:-0340ff0}
ROUNDS=${2:-6}
GO=${GO:-go}
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive "$A" | tar -x -C "$tmp"
cp "$root/internal/daemon/start_bench_test.go" "$tmp/internal/daemon/"
(cd "$tmp" && $GO test -c -o "$tmp/a.test" ./internal/daemon)
(cd "$root" && $GO test -c -o "$tmp/b.test" ./internal/daemon)
run() { (cd "$2" && "$1" -test.run '^$' -test.bench BenchmarkNewWithLargeKnownFile -test.benchtime 5x -test.count 1) | awk '/^Benchmark/ {print $3}'; }
for i in $(seq "$ROUNDS"); do
	a=$(run "$tmp/a.test" "$tmp/internal/daemon"); b=$(run "$tmp/b.test" "$root/internal/daemon")
	echo "round $i: A $a ns/op  B $b ns/op"
	echo "$a" >>"$tmp/a"; echo "$b" >>"$tmp/b"
done
med() { sort -n "$1" | awk '{v[NR]=$1} END {if (NR%2) printf "%.0f\n", v[(NR+1)/2]; else printf "%.0f\n", (v[NR/2]+v[NR/2+1])/2}'; }
ma=$(med "$tmp/a"); mb=$(med "$tmp/b")
echo "median A $ma ns/op  B $mb ns/op  B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.2f", b/a}')"
