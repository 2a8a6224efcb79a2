#!/usr/bin/env bash
# Whole-process speed: stray vs mailcheck in scenario C of the corpus (detect/testdata/eval),
# with the 1,500-domain known.txt as both tools' domain list; then stray with 1.5k vs 120k
# known domains, with peak RSS.
#
# Input: the scenario C recipients repeated to N lines. Each measurement is one whole process
# (start-up, reading the domain list, checking every line, writing one JSON line per address
# to /dev/null), wall time from `date +%s%N` before and after:
#   stray      stray check --known KNOWN --format json < INPUT > /dev/null
#   mailcheck  node scripts/mailcheck-bench.mjs KNOWN INPUT > /dev/null
# The runs alternate, ROUNDS rounds; the summary gives the median addresses/second.
#
# Env (defaults): N_STRAY (1000000), N_MAILCHECK (20000), ROUNDS (5),
#   ROUNDS_120K (3: the 120k-known stray run joins the first ROUNDS_120K rounds),
#   RSS_METHOD (auto: /usr/bin/time -f %M when it works, else VmHWM polled from /proc;
#   or time, proc, none).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
EVAL="$ROOT/detect/testdata/eval"
KNOWN="$EVAL/known.txt"
PEERS_DIR="$ROOT/.cache/peers"
PEERS_NM="$PEERS_DIR/node_modules"

N_STRAY=${N_STRAY:-1000000}
N_MAILCHECK=${N_MAILCHECK:-20000}
ROUNDS=${ROUNDS:-5}
ROUNDS_120K=${ROUNDS_120K:-3}
RSS_METHOD=${RSS_METHOD:-auto}
for v in N_STRAY N_MAILCHECK ROUNDS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "speed-peers: $v must be a positive integer" >&2; exit 2; }
done
[[ $ROUNDS_120K =~ ^[0-9]+$ ]] || { echo "speed-peers: ROUNDS_120K must be an integer" >&2; exit 2; }
((ROUNDS_120K <= ROUNDS)) || ROUNDS_120K=$ROUNDS

for tool in go node npm python3; do
	command -v "$tool" >/dev/null || { echo "speed-peers: $tool not found" >&2; exit 2; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/stray-speed.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

if [[ ! -f "$PEERS_NM/mailcheck/package.json" ||
	! -f "$PEERS_NM/@zootools/email-spell-checker/package.json" ||
	! -f "$PEERS_NM/email-misspelled/package.json" ]]; then
	echo "speed-peers: installing peers into .cache/peers" >&2
	mkdir -p "$PEERS_DIR"
	npm install --ignore-scripts --no-audit --no-fund --prefix "$PEERS_DIR" \
		mailcheck @zootools/email-spell-checker email-misspelled >&2
fi
export PEERS_NODE_MODULES="$PEERS_NM"

echo "speed-peers: building stray" >&2
go build -o "$TMP/stray" ./cmd/stray
STRAY="$TMP/stray"
BENCH="$ROOT/scripts/mailcheck-bench.mjs"

# Inputs: scenario C recipients cycled to N lines; the 120k known file: known.txt's domains
# plus seeded random plausible ones (deterministic: same file on every run).
python3 - "$EVAL/cases.jsonl" "$KNOWN" "$TMP" "$N_STRAY" "$N_MAILCHECK" <<'PY'
import itertools, json, random, sys
cases, known, tmp, n_stray, n_mc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rcpts = [c["rcpt"] for c in map(json.loads, filter(str.strip, open(cases))) if c["scenario"] == "C"]
for name, n in (("in-stray.txt", n_stray), ("in-mailcheck.txt", n_mc), ("in-sanity.txt", len(rcpts))):
    with open("%s/%s" % (tmp, name), "w") as f:
        f.writelines(r + "\n" for r in itertools.islice(itertools.cycle(rcpts), n))
rng = random.Random(20240601)
tlds = ["com", "net", "org", "de", "uk", "fr", "edu.au", "ac.jp", "co.uk", "io", "nl", "it", "es", "edu", "ca", "com.br"]
alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
seen, out = set(), []
for line in open(known):
    if line.startswith("#") or not line.strip():
        continue
    d = line.split()[0].lower()
    if d not in seen:
        seen.add(d)
        out.append(line.strip())
while len(out) < 120000:
    d = "".join(rng.choice(alnum) for _ in range(rng.randint(5, 14))) + "." + rng.choice(tlds)
    if d not in seen:
        seen.add(d)
        out.append("%s %d" % (d, rng.randint(1, 5000)))
with open("%s/known-120k.txt" % tmp, "w") as f:
    f.write("# synthetic: known.txt plus seeded random domains\n")
    f.writelines(l + "\n" for l in out)
PY
KNOWN120K="$TMP/known-120k.txt"
: >"$TMP/empty.txt"

# Peak RSS: GNU time if it takes -f, else VmHWM polled from /proc, else none.
if [[ $RSS_METHOD == auto ]]; then
	if command -v /usr/bin/time >/dev/null && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
		RSS_METHOD=time
	elif [[ -r /proc/self/status ]]; then
		RSS_METHOD=proc
	else
		RSS_METHOD=none
	fi
fi
case "$RSS_METHOD" in
time) rss_note="peak RSS from /usr/bin/time -f %M" ;;
proc) rss_note="peak RSS from VmHWM polled every 50 ms in /proc (can miss the last moments; wall time may include up to ~50 ms of polling lag)" ;;
none) rss_note="peak RSS not measured (no /usr/bin/time, no /proc)" ;;
*) echo "speed-peers: RSS_METHOD must be auto, time, proc or none" >&2; exit 2 ;;
esac

# measure INPUT CMD... : runs CMD < INPUT > /dev/null; sets WALL_NS and RSS_KB ("" if
# unknown); CMD's stderr is kept in $TMP/err. Exit 0 and 1 (something flagged) are success.
measure() {
	local in=$1 t0 t1 rc=0 pid v k rest
	shift
	RSS_KB=""
	case "$RSS_METHOD" in
	time)
		t0=$(date +%s%N)
		/usr/bin/time -f %M -o "$TMP/rss" "$@" <"$in" >/dev/null 2>"$TMP/err" || rc=$?
		t1=$(date +%s%N)
		RSS_KB=$(tail -n 1 "$TMP/rss")
		;;
	proc)
		t0=$(date +%s%N)
		"$@" <"$in" >/dev/null 2>"$TMP/err" &
		pid=$!
		while kill -0 "$pid" 2>/dev/null; do
			while read -r k v rest; do
				[[ $k == VmHWM: ]] && RSS_KB=$v
			done 2>/dev/null <"/proc/$pid/status" || true
			sleep 0.05
		done
		wait "$pid" || rc=$?
		t1=$(date +%s%N)
		;;
	none)
		t0=$(date +%s%N)
		"$@" <"$in" >/dev/null 2>"$TMP/err" || rc=$?
		t1=$(date +%s%N)
		;;
	esac
	if [[ $rc -ne 0 && $rc -ne 1 ]]; then
		echo "speed-peers: '$*' < $(basename "$in") failed (exit $rc):" >&2
		cat "$TMP/err" >&2
		exit 1
	fi
	WALL_NS=$((t1 - t0))
}

rate() { awk -v n="$1" -v ns="$2" 'BEGIN { printf "%.0f", n / (ns / 1e9) }'; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mb() { [[ -n $1 ]] && awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }' || echo "n/a"; }

# Sanity: both commands produce one line per input line.
"$STRAY" check --known "$KNOWN" --format json <"$TMP/in-sanity.txt" >"$TMP/out-stray" || [[ $? -eq 1 ]] || { echo "speed-peers: stray check failed on the sanity input" >&2; exit 1; }
node "$BENCH" "$KNOWN" "$TMP/in-sanity.txt" >"$TMP/out-mc" 2>/dev/null
n_sanity=$(wc -l <"$TMP/in-sanity.txt")
for f in out-stray out-mc; do
	[[ $(wc -l <"$TMP/$f") -eq $n_sanity ]] || { echo "speed-peers: $f: $(wc -l <"$TMP/$f") lines for $n_sanity inputs" >&2; exit 1; }
done
flag_stray=$(grep -vc '"verdict":"ok"' "$TMP/out-stray" || true)
flag_mc=$(grep -c '"flagged":true' "$TMP/out-mc" || true)

echo "== stray vs mailcheck, scenario C, $(grep -vc '^#' "$KNOWN") known domains, whole process =="
echo "inputs: scenario C recipients ($n_sanity distinct lines; stray flags $flag_stray of them, mailcheck $flag_mc) repeated to"
echo "        $N_STRAY lines for stray, $N_MAILCHECK for mailcheck; $ROUNDS rounds, alternating"
echo "stray: $(go version | awk '{print $3}'), node $(node --version), mailcheck $(node -p "require('$PEERS_NM/mailcheck/package.json').version")"
echo "$rss_note"

# Start-up alone (empty input), median of 3.
st_s=() st_m=() st_b=()
for _ in 1 2 3; do
	measure "$TMP/empty.txt" "$STRAY" check --known "$KNOWN" --format json; st_s+=("$WALL_NS")
	measure "$TMP/empty.txt" node "$BENCH" "$KNOWN" "$TMP/empty.txt"; st_m+=("$WALL_NS")
	measure "$TMP/empty.txt" "$STRAY" check --known "$KNOWN120K" --format json; st_b+=("$WALL_NS")
done
awk -v a="$(median "${st_s[@]}")" -v b="$(median "${st_m[@]}")" -v c="$(median "${st_b[@]}")" \
	'BEGIN { printf "start-up (empty input, median of 3): stray %.1f ms, mailcheck %.1f ms, stray with 120k known %.1f ms\n", a / 1e6, b / 1e6, c / 1e6 }'
echo

r_s=() r_m=() r_b=() rss_s=() rss_m=() rss_b=()
for ((i = 1; i <= ROUNDS; i++)); do
	measure "$TMP/in-stray.txt" "$STRAY" check --known "$KNOWN" --format json
	r_s+=("$(rate "$N_STRAY" "$WALL_NS")"); [[ -n $RSS_KB ]] && rss_s+=("$RSS_KB")
	printf 'round %d  stray      %8d addresses in %7ss = %9s addresses/s  rss %s\n' \
		"$i" "$N_STRAY" "$(secs "$WALL_NS")" "${r_s[-1]}" "$(mb "$RSS_KB")"

	measure "$TMP/in-mailcheck.txt" node "$BENCH" "$KNOWN" "$TMP/in-mailcheck.txt"
	r_m+=("$(rate "$N_MAILCHECK" "$WALL_NS")"); [[ -n $RSS_KB ]] && rss_m+=("$RSS_KB")
	printf 'round %d  mailcheck  %8d addresses in %7ss = %9s addresses/s  rss %s  [%s]\n' \
		"$i" "$N_MAILCHECK" "$(secs "$WALL_NS")" "${r_m[-1]}" "$(mb "$RSS_KB")" \
		"$(grep -o 'in [0-9.]* ms in-process, [0-9.]* us/address' "$TMP/err" || echo "no in-process time")"

	if ((i <= ROUNDS_120K)); then
		measure "$TMP/in-stray.txt" "$STRAY" check --known "$KNOWN120K" --format json
		r_b+=("$(rate "$N_STRAY" "$WALL_NS")"); [[ -n $RSS_KB ]] && rss_b+=("$RSS_KB")
		printf 'round %d  stray-120k %8d addresses in %7ss = %9s addresses/s  rss %s\n' \
			"$i" "$N_STRAY" "$(secs "$WALL_NS")" "${r_b[-1]}" "$(mb "$RSS_KB")"
	fi
done

m_s=$(median "${r_s[@]}")
m_m=$(median "${r_m[@]}")
echo
echo "== median addresses/second, whole process =="
printf '%-36s %10s addresses/s\n' "stray (1.5k known)" "$m_s" "mailcheck (1.5k known)" "$m_m"
awk -v a="$m_s" -v b="$m_m" 'BEGIN { printf "%-36s %10.1fx\n", "ratio stray/mailcheck", a / b }'

if ((ROUNDS_120K > 0)); then
	m_b=$(median "${r_b[@]}")
	echo
	echo "== stray: 1.5k vs 120k known domains (median; 120k over $ROUNDS_120K round(s)) =="
	pk_s=""; pk_b=""
	((${#rss_s[@]})) && pk_s=$(printf '%s\n' "${rss_s[@]}" | sort -g | tail -n 1)
	((${#rss_b[@]})) && pk_b=$(printf '%s\n' "${rss_b[@]}" | sort -g | tail -n 1)
	printf '%-36s %10s addresses/s  peak rss %s\n' "stray, $(grep -vc '^#' "$KNOWN") known" "$m_s" "$(mb "$pk_s")"
	printf '%-36s %10s addresses/s  peak rss %s\n' "stray, $(grep -vc '^#' "$KNOWN120K") known (synthetic)" "$m_b" "$(mb "$pk_b")"
	awk -v a="$m_b" -v b="$m_s" 'BEGIN { printf "%-36s %10.2f\n", "ratio 120k/1.5k (speed)", a / b }'
	[[ -n $pk_s && -n $pk_b ]] &&
		awk -v a="$pk_b" -v b="$pk_s" 'BEGIN { printf "%-36s %10.2f\n", "ratio 120k/1.5k (peak rss)", a / b }'
fi
if ((${#rss_m[@]})); then
	echo "mailcheck peak rss: $(mb "$(printf '%s\n' "${rss_m[@]}" | sort -g | tail -n 1)")"
fi
