#!/usr/bin/env bash
# stray side by side with the JavaScript peers (mailcheck, @zootools/email-spell-checker,
# email-misspelled) on the development corpus in detect/testdata/eval.
#
# For each scenario A B C D, stray gets the scenario's context (README in the corpus folder):
#   A  none
#   B  --protect mil --known mil_known.txt   (peers: mil_known.txt as their domain list)
#   C  --known known.txt                    (peers: known.txt as their domain list)
#   D  none
#   S  none: the class-balanced synthetic set, synth.jsonl (detect/synth_test.go writes it);
#      also scored per class of slip.
# A case counts as flagged by stray when its verdict is warn, hold or block (not ok, and not
# invalid: an unparsable line suggests nothing).
# score.py then prints, per peer and scenario: typos, recall, fix, legit, fpr.
#
# Needs go, node, npm (first run only: installs the peers into PEERS_DIR) and python3.
# Env: EVAL_KEEP=DIR  copy the per-scenario result files (results-*.jsonl) into DIR.
#      PEERS_DIR=DIR  where the npm peers are (default .cache/peers, git-ignored).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
EVAL="$ROOT/detect/testdata/eval"
CASES="$EVAL/cases.jsonl"
PEERS_DIR="${PEERS_DIR:-$ROOT/.cache/peers}"
PEERS_NM="$PEERS_DIR/node_modules"

for tool in go node npm python3; do
	command -v "$tool" >/dev/null || { echo "eval-peers: $tool not found" >&2; exit 2; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/stray-eval-peers.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Peers: installed once into .cache/peers (git-ignored), only when missing.
if [[ ! -f "$PEERS_NM/mailcheck/package.json" ||
	! -f "$PEERS_NM/@zootools/email-spell-checker/package.json" ||
	! -f "$PEERS_NM/email-misspelled/package.json" ]]; then
	echo "eval-peers: installing peers into $PEERS_DIR" >&2
	mkdir -p "$PEERS_DIR"
	npm install --ignore-scripts --no-audit --no-fund --prefix "$PEERS_DIR" \
		mailcheck @zootools/email-spell-checker email-misspelled >&2
fi

echo "eval-peers: building stray" >&2
go build -o "$TMP/stray" ./cmd/stray

# Milliseconds since the epoch, for whole-process wall time.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

: >"$TMP/timing.txt"
for sc in A B C D S; do
	CASES="$EVAL/cases.jsonl"
	case "$sc" in
	A | D) ctx=(); peer_domains=() ;;
	S) ctx=(); peer_domains=(); CASES="$EVAL/synth.jsonl" ;;
	B) ctx=(--protect mil --known "$EVAL/mil_known.txt"); peer_domains=("$EVAL/mil_known.txt") ;;
	C) ctx=(--known "$EVAL/known.txt"); peer_domains=("$EVAL/known.txt") ;;
	esac

	# The scenario's cases: ids and recipients, line for line.
	python3 - "$CASES" "$sc" "$TMP/$sc.ids" "$TMP/$sc.rcpt" <<'PY'
import json, sys
cases, sc, ids_path, rcpt_path = sys.argv[1:]
with open(cases) as f, open(ids_path, "w") as ids, open(rcpt_path, "w") as rcpt:
    for line in f:
        if not line.strip():
            continue
        c = json.loads(line)
        if c["scenario"] != sc:
            continue
        r = c["rcpt"]
        if "\n" in r or "\r" in r:
            sys.exit("eval-peers: case %s: recipient spans lines" % c["id"])
        ids.write(c["id"] + "\n")
        rcpt.write(r + "\n")
PY
	n=$(wc -l <"$TMP/$sc.rcpt")

	# stray: exit 0 (none flagged) and 1 (some flagged) are both success.
	t0=$(now_ms)
	rc=0
	"$TMP/stray" check ${ctx[@]+"${ctx[@]}"} --format json <"$TMP/$sc.rcpt" >"$TMP/$sc.stray.out" 2>"$TMP/$sc.stray.err" || rc=$?
	t1=$(now_ms)
	if [[ $rc -ne 0 && $rc -ne 1 ]]; then
		# 2 is a usage error only: an unparsable line is verdict "invalid", exit 1.
		echo "eval-peers: stray check failed on scenario $sc (exit $rc):" >&2
		cat "$TMP/$sc.stray.err" >&2
		exit 1
	fi
	ms=$((t1 - t0))
	python3 -c 'import sys; n, ms, sc = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print("stray scenario %s: %d checks in %d ms whole process, start-up included (%.2f us/check)" % (sc, n, ms, ms * 1000.0 / n if n else 0))' \
		"$n" "$ms" "$sc" >>"$TMP/timing.txt"

	# Join stray's output lines to case ids by line order.
	python3 - "$TMP/$sc.ids" "$TMP/$sc.rcpt" "$TMP/$sc.stray.out" "$TMP/results-stray-$sc.jsonl" "$sc" <<'PY'
import json, sys
ids_path, rcpt_path, out_path, res_path, sc = sys.argv[1:]
ids = open(ids_path).read().splitlines()
rcpts = open(rcpt_path).read().splitlines()
outs = open(out_path).read().splitlines()
if len(outs) != len(ids):
    sys.exit("eval-peers: scenario %s: stray printed %d lines for %d inputs" % (sc, len(outs), len(ids)))
errors = mismatched = 0
with open(res_path, "w") as res:
    for cid, rcpt, line in zip(ids, rcpts, outs):
        o = json.loads(line)
        if "error" in o:
            errors += 1
        if o.get("address") != rcpt:
            mismatched += 1
        v = o.get("verdict")
        res.write(json.dumps({"id": cid, "peer": "stray", "flagged": v not in ("ok", "invalid"),
                              "suggestion": o.get("suggestion"), "verdict": v}) + "\n")
if errors:
    print("eval-peers: note: scenario %s: %d address(es) stray could not parse" % (sc, errors), file=sys.stderr)
if mismatched:
    print("eval-peers: note: scenario %s: %d output line(s) echo a different address than the input" % (sc, mismatched), file=sys.stderr)
PY

	# The peers on the same scenario; their timing lines go to stderr.
	PEERS_NODE_MODULES="$PEERS_NM" node "$EVAL/run_peers.mjs" "$CASES" "$sc" ${peer_domains[@]+"${peer_domains[@]}"} \
		>"$TMP/results-peers-$sc.jsonl" 2>"$TMP/$sc.peers.err" || {
		echo "eval-peers: run_peers.mjs failed on scenario $sc:" >&2
		cat "$TMP/$sc.peers.err" >&2
		exit 1
	}
	cat "$TMP/$sc.peers.err" >>"$TMP/timing.txt"
done

echo "== timing per scenario (peers: in-process check loop; stray: whole process) =="
cat "$TMP/timing.txt"
echo
echo "== score (flagged: stray verdict != ok; peers: a suggestion differing from the input) =="
python3 "$EVAL/score.py" "$EVAL/cases.jsonl" "$TMP"/results-stray-[ABCD].jsonl "$TMP"/results-peers-[ABCD].jsonl
python3 "$EVAL/score.py" "$EVAL/synth.jsonl" "$TMP"/results-stray-S.jsonl "$TMP"/results-peers-S.jsonl | tail -n +2
echo
echo "== synthetic set (S) per class: recall / fix (legit: fpr) =="
python3 - "$EVAL/synth.jsonl" "$TMP"/results-stray-S.jsonl "$TMP"/results-peers-S.jsonl <<'PY'
import json, sys, collections
def dom(a):
    if not a:
        return None
    d = a.rsplit('@', 1)[-1].strip().rstrip('.').lower()
    try:
        d = d.encode('idna').decode().lower() if not d.startswith('xn--') else d
    except Exception:
        pass
    return d
cases = {c['id']: c for c in map(json.loads, open(sys.argv[1]))}
st = collections.defaultdict(collections.Counter)
peers = []
for f in sys.argv[2:]:
    for l in open(f):
        r = json.loads(l)
        c = cases[r['id']]
        p = r['peer']
        if p not in peers:
            peers.append(p)
        s = st[(c['kind'], p)]
        s['n'] += 1
        s['hit'] += bool(r['flagged'])
        if c['label'] == 'typo':
            s['fix'] += bool(r['flagged']) and dom(r.get('suggestion')) == dom(c['intended'])
kinds = sorted({k for k, _ in st})
print("%-15s" % "class" + "".join("%22s" % p for p in peers))
for k in kinds:
    row = "%-15s" % k
    for p in peers:
        s = st[(k, p)]
        if k == 'legit':
            row += "%22s" % ("fpr %.3f (%d)" % (s['hit'] / s['n'], s['n']))
        else:
            row += "%22s" % ("%.3f / %.3f (%d)" % (s['hit'] / s['n'], s['fix'] / s['n'], s['n']))
    print(row)
PY

if [[ -n "${EVAL_KEEP:-}" ]]; then
	mkdir -p "$EVAL_KEEP"
	cp "$TMP"/results-*.jsonl "$EVAL_KEEP"/
	echo "eval-peers: results kept in $EVAL_KEEP" >&2
fi
