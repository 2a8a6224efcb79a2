#!/usr/bin/env bash
# Whole-process speed of `stray audit` against `grep -c status=sent` over the
# same realistic Postfix log (the issue's target: stray's throughput at least
# 25% of grep's). The log is synthesised deterministically by replaying and
# varying the line shapes of a real Postfix 3.7 (internal/maillog/synth:
# submission with TLS and SASL, cleanup, qmgr, smtp, LMTP, bounces,
# deferrals and retries, postscreen, anvil, NOQUEUE rejects; 0.3% typos).
# Both read it from the page cache, in alternating rounds; medians are
# compared. stray uses every core (GOMAXPROCS); grep uses one.
#
#   scripts/audit-vs-grep.sh            # 300 MB, 7 rounds
#   SIZE=1G ROUNDS=5 scripts/audit-vs-grep.sh
#
# It also checks that both count the same deliveries.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
SIZE=${SIZE:-300M}
ROUNDS=${ROUNDS:-7}
SEED=${SEED:-1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/stray" ./cmd/stray
go run ./internal/maillog/synth/synthlog -size "$SIZE" -seed "$SEED" >"$work/mail.log" 2>"$work/synth.txt"
bytes=$(stat -c %s "$work/mail.log")
cat "$work/mail.log" >/dev/null # into the page cache

# The command stray is timed with: the audit a security officer runs.
stray_cmd=("$work/stray" audit --protect corp.example --format json "$work/mail.log")

now() { date +%s.%N; }
grep_t=() stray_t=()
for ((i = 1; i <= ROUNDS; i++)); do
  # grep's output goes to a file: GNU grep stops at the first match when
  # its output is /dev/null.
  t0=$(now)
  grep -c status=sent "$work/mail.log" >"$work/grep.out"
  t1=$(now)
  "${stray_cmd[@]}" >"$work/stray.out" 2>"$work/stray.err" || [ $? -eq 1 ]
  t2=$(now)
  grep_t+=("$(printf %.3f "$(echo "$t1 - $t0" | bc -l)")")
  stray_t+=("$(printf %.3f "$(echo "$t2 - $t1" | bc -l)")")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
g=$(median "${grep_t[@]}")
s=$(median "${stray_t[@]}")

sent_grep=$(cat "$work/grep.out")
sent_stray=$(sed -n 's/.*: \([0-9]*\) delivered,.*/\1/p' "$work/stray.err" | head -1)
if [ "$sent_grep" != "$sent_stray" ]; then
  echo "audit-vs-grep: deliveries differ: grep $sent_grep, stray $sent_stray" >&2
  exit 1
fi

mb=$(echo "$bytes / 1048576" | bc -l)
echo "log: $(printf %.0f "$mb") MB, $(sed 's/^synthlog: //' "$work/synth.txt")"
echo "cores: $(nproc); stray: ${stray_cmd[*]/#$work\//}"
echo "rounds: $ROUNDS, alternating; seconds per round:"
echo "  grep -c status=sent: ${grep_t[*]}"
echo "  stray audit:         ${stray_t[*]}"
printf 'median  grep %.3f s (%.0f MB/s)   stray %.3f s (%.0f MB/s)\n' "$g" "$(echo "$mb / $g" | bc -l)" "$s" "$(echo "$mb / $s" | bc -l)"
printf 'stray throughput / grep throughput = %.2f (target >= 0.25); both counted %s deliveries\n' "$(echo "$g / $s" | bc -l)" "$sent_grep"
grep 'went to' "$work/stray.err" | sed 's/^/  /'
