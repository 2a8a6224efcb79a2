#!/usr/bin/env bash
# stray scan vs dnstwist, side by side, against the same local DNS answerer.
#
# One run, nothing leaves the machine:
#   - the answerer is internal/scan/testdata/zoneserver, serving the zone of
#     registered lookalikes in internal/scan/testdata/lookalikes.zone (its
#     SERVFAIL/slow test names dropped) on 127.0.0.1:53 — dnstwist's
#     --nameservers takes an address without a port;
#   - everything runs inside a new network namespace (unshare -n) whose only
#     interface is loopback, so no query or connection can reach any other
#     address; outside one (no unshare), the script refuses unless
#     ALLOW_NO_NETNS=1, and then only loopback is named anywhere;
#   - dnstwist runs without GeoIP, WHOIS, banners, fuzzy hashes, screenshots
#     or MX checks (-g -w -b -s -p -m are never passed): only DNS questions to
#     the --nameservers address.
#
# Per target (army.mil, mail.mil, gmail.com; TARGETS overrides) and ROUNDS
# rounds (default 3, alternating tools), wall time from date +%s%N:
#   dnstwist      dnstwist --registered --format json --nameservers 127.0.0.1 DOMAIN
#   dnstwist -t32 the same with 32 threads (stray's default concurrency)
#   stray         stray scan --resolver 127.0.0.1:53 --format json --all DOMAIN
# (--all prints every candidate so one run counts them; it does the same DNS
# work as without it). Candidates generated: dnstwist --format list (no DNS);
# registered found: JSON entries (dnstwist's minus the original itself;
# stray's with status registered or wildcard). Prints the medians and the
# time ratio dnstwist/stray.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
ROUNDS=${ROUNDS:-3}
TARGETS=${TARGETS:-"army.mil mail.mil gmail.com"}
PORT=53
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "scan-vs-dnstwist: ROUNDS must be a positive integer" >&2; exit 2; }

if [[ ${1:-} != --inner ]]; then
	for tool in go dnstwist python3; do
		command -v "$tool" >/dev/null || {
			echo "scan-vs-dnstwist: $tool not found (dnstwist: apt-get install -y dnstwist)" >&2
			exit 2
		}
	done
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/stray-vs-dnstwist.XXXXXX")
	trap 'rm -rf "$TMP"' EXIT
	echo "scan-vs-dnstwist: building stray and the zone server" >&2
	go build -o "$TMP/stray" ./cmd/stray
	go build -o "$TMP/zoneserver" ./internal/scan/testdata/zoneserver
	grep -v 'stray-test:' internal/scan/testdata/lookalikes.zone >"$TMP/zone"
	if unshare -n true 2>/dev/null; then
		unshare -n -- "$0" --inner "$TMP"
	elif [[ ${ALLOW_NO_NETNS:-} == 1 ]]; then
		echo "scan-vs-dnstwist: no network namespace; only 127.0.0.1 is named" >&2
		"$0" --inner "$TMP"
	else
		echo "scan-vs-dnstwist: cannot make a network namespace (unshare -n; needs root)." >&2
		echo "  ALLOW_NO_NETNS=1 runs without one; every query still goes to 127.0.0.1 only." >&2
		exit 2
	fi
	exit
fi

# --- inner: inside the namespace ---------------------------------------------
TMP=$2
if [[ $(ip -o link 2>/dev/null | grep -cv ' lo:') -eq 0 ]]; then
	ip link set lo up
fi
"$TMP/zoneserver" -zone "$TMP/zone" -addr "127.0.0.1:$PORT" >"$TMP/zs.addr" 2>"$TMP/zs.log" &
ZS=$!
trap 'kill "$ZS" 2>/dev/null; wait "$ZS" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s $TMP/zs.addr ]] && break; sleep 0.1; done
[[ -s $TMP/zs.addr ]] || { echo "scan-vs-dnstwist: zone server did not start: $(cat "$TMP/zs.log")" >&2; exit 2; }
echo "scan-vs-dnstwist: zone server on $(cat "$TMP/zs.addr"), $(grep -c . "$TMP/zone") zone lines" >&2
echo "scan-vs-dnstwist: dnstwist $(dnstwist --help 2>&1 | sed -n 's/^dnstwist \([0-9]*\).*/\1/p'), $(nproc) cores, $ROUNDS rounds" >&2

now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }

# run_timed NAME FILE CMD...: runs CMD with stdout to FILE, appends ms to $TMP/NAME.ms
run_timed() {
	local name=$1 out=$2
	shift 2
	local t0 t1
	t0=$(now_ms)
	"$@" >"$out" 2>"$out.err" || [[ $? -eq 1 ]] # stray exits 1 when it finds something
	t1=$(now_ms)
	echo $((t1 - t0)) >>"$TMP/$name.ms"
}

count_dnstwist() { python3 -c 'import json,sys; print(sum(1 for d in json.load(open(sys.argv[1])) if d.get("fuzzer") != "*original"))' "$1"; }
count_stray() { python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["status"] in ("registered","wildcard")))' "$1"; }
names_dnstwist() { python3 -c 'import json,sys; print("\n".join(sorted(d["domain"] for d in json.load(open(sys.argv[1])) if d.get("fuzzer") != "*original")))' "$1"; }
names_stray() { python3 -c 'import json,sys; print("\n".join(sorted(json.loads(l)["domain"] for l in open(sys.argv[1]) if json.loads(l)["status"] in ("registered","wildcard"))))' "$1"; }

printf '\n%-10s %-14s %10s %10s %9s\n' target tool candidates registered "time ms"
tot_dt=0 tot_dt32=0 tot_st=0 tot_dc=0 tot_sc=0
for d in $TARGETS; do
	for r in $(seq "$ROUNDS"); do
		run_timed "$d.dnstwist" "$TMP/$d.dnstwist.json" dnstwist --registered --format json --nameservers 127.0.0.1 "$d"
		run_timed "$d.stray" "$TMP/$d.stray.json" "$TMP/stray" scan --resolver "127.0.0.1:$PORT" --format json --all "$d"
		run_timed "$d.dnstwist32" "$TMP/$d.dnstwist32.json" dnstwist --registered --format json -t 32 --nameservers 127.0.0.1 "$d"
	done
	dc=$(dnstwist --format list "$d" | grep -c .)
	sc=$(grep -c . "$TMP/$d.stray.json")
	dr=$(count_dnstwist "$TMP/$d.dnstwist.json")
	dr32=$(count_dnstwist "$TMP/$d.dnstwist32.json")
	sr=$(count_stray "$TMP/$d.stray.json")
	dt=$(median <"$TMP/$d.dnstwist.ms")
	dt32=$(median <"$TMP/$d.dnstwist32.ms")
	st=$(median <"$TMP/$d.stray.ms")
	tot_dt=$((tot_dt + dt)) tot_dt32=$((tot_dt32 + dt32)) tot_st=$((tot_st + st))
	tot_dc=$((tot_dc + dc)) tot_sc=$((tot_sc + sc))
	printf '%-10s %-14s %10s %10s %9s\n' "$d" dnstwist "$dc" "$dr" "$dt"
	printf '%-10s %-14s %10s %10s %9s\n' "" "dnstwist -t32" "$dc" "$dr32" "$dt32"
	printf '%-10s %-14s %10s %10s %9s   x%s / x%s\n' "" stray "$sc" "$sr" "$st" \
		"$(awk -v a="$dt" -v b="$st" 'BEGIN{printf "%.1f", a/(b>0?b:1)}')" \
		"$(awk -v a="$dt32" -v b="$st" 'BEGIN{printf "%.1f", a/(b>0?b:1)}')"
	only_d=$(comm -23 <(names_dnstwist "$TMP/$d.dnstwist.json") <(names_stray "$TMP/$d.stray.json") | paste -sd' ')
	only_s=$(comm -13 <(names_dnstwist "$TMP/$d.dnstwist.json") <(names_stray "$TMP/$d.stray.json") | paste -sd' ')
	printf '%-10s   found only by dnstwist: %s\n' "" "${only_d:-none}"
	printf '%-10s   found only by stray:    %s\n' "" "${only_s:-none}"
done
printf '\n%-25s %9s ms\n%-25s %9s ms\n%-25s %9s ms\n' "total dnstwist" "$tot_dt" "total dnstwist -t32" "$tot_dt32" "total stray" "$tot_st"
printf 'ratio dnstwist/stray: x%s (default threads), x%s (32 threads)\n' \
	"$(awk -v a="$tot_dt" -v b="$tot_st" 'BEGIN{printf "%.1f", a/(b>0?b:1)}')" \
	"$(awk -v a="$tot_dt32" -v b="$tot_st" 'BEGIN{printf "%.1f", a/(b>0?b:1)}')"
# Per candidate, since the tools generate different numbers of them.
printf 'per 1000 candidates: dnstwist %s ms, stray %s ms: x%s\n' \
	"$(awk -v t="$tot_dt" -v n="$tot_dc" 'BEGIN{printf "%.0f", 1000*t/n}')" \
	"$(awk -v t="$tot_st" -v n="$tot_sc" 'BEGIN{printf "%.0f", 1000*t/n}')" \
	"$(awk -v a="$tot_dt" -v n="$tot_dc" -v b="$tot_st" -v m="$tot_sc" 'BEGIN{printf "%.1f", (a/n)/((b>0?b:1)/m)}')"
