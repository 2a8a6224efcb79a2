package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/milter/miltertest"
	"github.com/stray-mail/stray/internal/postfixtest"
)

// These measure rather than check, and take minutes: they run only when
// asked (make perf). Each prints its figures with t.Log.

func perfEnabled(t *testing.T, env string) int {
	v := os.Getenv(env)
	if v == "" {
		t.Skipf("set %s to run this measurement (make perf)", env)
	}
	n, _ := strconv.Atoi(v)
	return n
}

// startSmtpSink runs Postfix's smtp-sink (fast, C) on a loopback port.
func startSmtpSink(t *testing.T) string {
	addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	cmd := exec.Command("smtp-sink", "-u", "postfix", addr, "256")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(200 * time.Millisecond)
	return addr
}

// smtpSource sends n messages over sessions parallel connections and
// returns the wall time.
func smtpSource(t *testing.T, addr string, n, sessions int) time.Duration {
	args := []string{"-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", "2048", "-f", "a@army.mil", "-t", "c@army.mil"}
	if os.Getenv("STRAY_PERF_KEEP_SESSIONS") != "" {
		// Many messages per SMTP session, as relays send: Postfix keeps
		// one milter connection per SMTP session.
		args = append(args, "-d")
	}
	start := time.Now()
	out, err := exec.Command("smtp-source", append(args, addr)...).CombinedOutput()
	if err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	return time.Since(start)
}

// TestPerfPostfixThroughputWithAndWithoutMilter: Postfix's message rate with
// the stray milter against the same Postfix without it, alternating rounds
// in one run. Target: ratio ≥ 0.90. With STRAY_PERF_CMILTER=1 it also runs
// a C libmilter no-op on the same transport (TCP, or a unix socket with
// STRAY_PERF_UNIX=1) and compares stray's milter with it: target ≥ 0.95 of
// its rate and no more CPU per message; with STRAY_PERF_CMILTER=hold, also
// the no-op built with stray's hold-on conversation (noopmilter.c,
// HOLD_STEPS), which separates what Postfix does differently for a milter
// that may need the content. With STRAY_PERF_MILTER_BASE=/path/to/stray
// another build's milter runs in the same rounds, for an A/B comparison
// (make perf-milter MILTER_PERF_BASE=REV).
func TestPerfPostfixThroughputWithAndWithoutMilter(t *testing.T) {
	n := perfEnabled(t, "STRAY_PERF_MESSAGES")
	if n <= 0 {
		n = 3000
	}
	sockDir := ""
	if os.Getenv("STRAY_PERF_UNIX") != "" {
		sockDir = sockTempDir(t)
	}
	s := startStrayOn(t, sockDir, milConfig+"log:\n  level: info\n")
	t.Logf("milter at %s, stray's GOMAXPROCS=%q (STRAY_E2E_GOMAXPROCS)", s.MilterSpec(), os.Getenv("STRAY_E2E_GOMAXPROCS"))
	var base *stray
	if bin := os.Getenv("STRAY_PERF_MILTER_BASE"); bin != "" {
		base = startBaseMilter(t, bin, sockDir)
	}
	sink := startSmtpSink(t)
	relay := "[127.0.0.1]:" + sink[strings.LastIndexByte(sink, ':')+1:]
	bare := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{"relayhost": relay}})
	with := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec(), Extra: map[string]string{"relayhost": relay}})
	pol := postfixtest.Start(t, postfixtest.Options{Policy: s.Policy, Extra: map[string]string{"relayhost": relay}})
	// Optionally a C libmilter no-op with the same conversation: what the
	// milter protocol itself costs Postfix on this machine.
	var noop, noopHold *postfixtest.Postfix
	noopPid, noopHoldPid := 0, 0
	var noopSpec, noopHoldSpec string
	if os.Getenv("STRAY_PERF_CMILTER") != "" {
		noopSpec, noopPid = startNoopMilter(t, sockDir != "", false)
		noop = postfixtest.Start(t, postfixtest.Options{Milter: noopSpec, Extra: map[string]string{"relayhost": relay}})
	}
	if os.Getenv("STRAY_PERF_CMILTER") == "hold" {
		noopHoldSpec, noopHoldPid = startNoopMilter(t, sockDir != "", true)
		noopHold = postfixtest.Start(t, postfixtest.Options{Milter: noopHoldSpec, Extra: map[string]string{"relayhost": relay}})
	}
	var withBase *postfixtest.Postfix
	if base != nil {
		withBase = postfixtest.Start(t, postfixtest.Options{Milter: base.MilterSpec(), Extra: map[string]string{"relayhost": relay}})
	}
	var all []*postfixtest.Postfix
	for _, pf := range []*postfixtest.Postfix{bare, with, pol, noop, noopHold, withBase} {
		if pf != nil {
			smtpSource(t, pf.SMTP, 200, 10) // warm up
			all = append(all, pf)
		}
	}
	rounds, _ := strconv.Atoi(os.Getenv("STRAY_PERF_ROUNDS"))
	if rounds <= 0 {
		rounds = 5
	}
	// One run per front end and round, in alternating order (forward in
	// odd rounds, backward in even ones) so that a drift in the machine's
	// load does not favour whichever runs first; each run's rate and, for
	// a milter or policy server, its process's CPU per message; each run
	// starts when every queue is empty (waitDrained). The
	// milters (and none, "bare") move from one Postfix instance to the
	// next each round: instances differ (where their queues lie, their
	// processes' history), and a difference that stays with one instance
	// through a run would otherwise count as its milter's.
	type run struct {
		name   string
		pf     *postfixtest.Postfix
		milter string // moves between instances with this milter ("": none)
		moves  bool
		pid    int // whose CPU the run costs (0: none measured)
		rate   []float64
		cpu    []float64 // µs per message
		left   []float64 // messages still queued when the run ended
	}
	runs := []*run{{name: "bare", pf: bare, moves: true}, {name: "milter", pf: with, milter: s.MilterSpec(), moves: true, pid: s.cmd.Process.Pid}}
	// The no-ops, next to stray's milter, which they are compared with.
	noops := map[string]string{"noop": "the C libmilter no-op", "noop-hold": "the C libmilter no-op with the hold-on conversation"}
	if noop != nil {
		runs = append(runs, &run{name: "noop", pf: noop, milter: noopSpec, moves: true, pid: noopPid})
	}
	if noopHold != nil {
		runs = append(runs, &run{name: "noop-hold", pf: noopHold, milter: noopHoldSpec, moves: true, pid: noopHoldPid})
	}
	if base != nil {
		runs = append(runs, &run{name: "base", pf: withBase, milter: base.MilterSpec(), moves: true, pid: base.cmd.Process.Pid})
	}
	runs = append(runs, &run{name: "policy", pf: pol, pid: s.cmd.Process.Pid})
	byName := map[string]*run{}
	var moving []*run
	var instances []*postfixtest.Postfix
	for _, r := range runs {
		byName[r.name] = r
		if r.moves {
			moving = append(moving, r)
			instances = append(instances, r.pf)
		}
	}
	for round := 0; round < rounds; round++ {
		if round > 0 && os.Getenv("STRAY_PERF_FIXED_INSTANCES") == "" {
			for i, r := range moving {
				r.pf = instances[(i+round)%len(instances)]
				r.pf.SetMilter(r.milter)
			}
			time.Sleep(time.Second) // the old smtpd processes go
			for _, r := range moving {
				smtpSource(t, r.pf.SMTP, 100, 10) // warm up
			}
		}
		order := append([]*run(nil), runs...)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, r := range order {
			waitDrained(t, all)
			c := cpuTime(t, r.pid)
			d := smtpSource(t, r.pf.SMTP, n, 10)
			r.rate = append(r.rate, float64(n)/d.Seconds())
			r.cpu = append(r.cpu, float64((cpuTime(t, r.pid)-c).Microseconds())/float64(n))
			r.left = append(r.left, float64(r.pf.Queued()))
		}
		m, p := byName["milter"], byName["policy"]
		line := fmt.Sprintf("round %d: bare %.0f msg/s, with stray milter %.0f msg/s (%.0f µs CPU/msg), with stray policy server %.0f msg/s (%.0f µs CPU/msg)",
			round+1, byName["bare"].rate[round], m.rate[round], m.cpu[round], p.rate[round], p.cpu[round])
		for _, name := range []string{"noop", "noop-hold"} {
			if r := byName[name]; r != nil {
				line += fmt.Sprintf(", with %s %.0f msg/s (%.0f µs CPU/msg)", noops[name], r.rate[round], r.cpu[round])
			}
		}
		if base != nil {
			line += fmt.Sprintf(", with the base build's milter %.0f msg/s (%.0f µs CPU/msg)", byName["base"].rate[round], byName["base"].cpu[round])
		}
		t.Log(line)
	}
	for _, r := range runs {
		t.Logf("%s: %.0f messages still queued at the end of a run (median; the next run waits until every queue is empty)", r.name, median(r.left))
	}
	rb, rw, rp := byName["bare"].rate, byName["milter"].rate, byName["policy"].rate
	// CPU is read in clock ticks (10 ms): the mean over the rounds is the
	// precise figure, the median the one a busy neighbour moves least.
	t.Logf("stray CPU per message: milter %.0f µs (median of rounds %.0f µs), policy server %.0f µs (median %.0f µs)",
		mean(byName["milter"].cpu), median(byName["milter"].cpu), mean(byName["policy"].cpu), median(byName["policy"].cpu))
	t.Logf("median: bare %.0f msg/s, milter %.0f msg/s (ratio %.3f), policy server %.0f msg/s (ratio %.3f); target ≥ 0.90",
		median(rb), median(rw), median(rw)/median(rb), median(rp), median(rp)/median(rb))
	// Paired: each round's ratio against the bare run next to it, which
	// cancels slow drifts in the machine's load.
	t.Logf("median of per-round ratios: milter %.3f, policy server %.3f", median(ratios(rw, rb)), median(ratios(rp, rb)))
	transport := "TCP"
	if sockDir != "" {
		transport = "a unix socket"
	}
	if base != nil {
		rbase, mc, bc := byName["base"].rate, byName["milter"].cpu, byName["base"].cpu
		rlo, rhi := bootMedian(ratios(rw, rbase))
		clo, chi := bootMedian(ratios(mc, bc))
		t.Logf("this build's milter against the base build's over %s: message rate %.3f (median of per-round ratios, 95%% interval [%.3f, %.3f]), CPU per message %.0f µs against %.0f µs (median of per-round ratios %.2f, 95%% interval [%.2f, %.2f])",
			transport, median(ratios(rw, rbase)), rlo, rhi, mean(mc), mean(bc), median(ratios(mc, bc)), clo, chi)
	}
	for _, name := range []string{"noop", "noop-hold"} {
		r := byName[name]
		if r == nil {
			continue
		}
		rc := r.rate
		t.Logf("%s: median %.0f msg/s (ratio %.3f), median of per-round ratios %.3f, CPU per message %.0f µs (median of rounds %.0f µs)",
			noops[name], median(rc), median(rc)/median(rb), median(ratios(rc, rb)), mean(r.cpu), median(r.cpu))
		// The figures: stray's milter against the no-op, both
		// over the same transport, in the same rounds.
		mc, nc := byName["milter"].cpu, r.cpu
		rlo, rhi := bootMedian(ratios(rw, rc))
		clo, chi := bootMedian(ratios(mc, nc))
		t.Logf("stray's milter against %s over %s: message rate %.3f of the no-op's (median of per-round ratios, 95%% interval [%.3f, %.3f]; medians %.0f and %.0f msg/s), CPU per message %.0f µs against %.0f µs (%.2f; median of per-round ratios %.2f, 95%% interval [%.2f, %.2f]); target ≥ 0.95 and ≤ 1",
			noops[name], transport, median(ratios(rw, rc)), rlo, rhi, median(rw), median(rc), mean(mc), mean(nc), mean(mc)/mean(nc), median(ratios(mc, nc)), clo, chi)
	}
}

// waitDrained waits until every instance has delivered what it queued, so
// that no run pays for the delivery of the run before it: a run ends when
// its client has sent the last message, while its Postfix may still be
// delivering, and whichever run came next would share the machine with
// that. STRAY_PERF_NO_DRAIN=1 does not wait (as before 2026-11-30).
func waitDrained(t *testing.T, pfs []*postfixtest.Postfix) {
	t.Helper()
	if os.Getenv("STRAY_PERF_NO_DRAIN") != "" {
		return
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, pf := range pfs {
		for pf.Queued() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("Postfix at %s still has %d messages queued after 2 minutes", pf.SMTP, pf.Queued())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// startBaseMilter runs another build of stray (bin) for an A/B, its
// milter on TCP, or in sockDir/base when sockDir is not empty.
func startBaseMilter(t *testing.T, bin, sockDir string) *stray {
	t.Helper()
	dir := sockDir
	if dir != "" {
		dir = filepath.Join(sockDir, "base")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return startStrayBin(t, bin, dir, milConfig+"log:\n  level: info\n")
}

// startNoopMilter builds testdata/noopmilter.c (gcc and Debian's
// libmilter-dev) and runs it on the transport stray's milter uses in the
// same run, so that the two are compared like for like: a unix socket
// Postfix can reach when unix is true, a TCP port on loopback otherwise.
func startNoopMilter(t *testing.T, unix, holdSteps bool) (spec string, pid int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "stray-noop-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := dir + "/noopmilter"
	args := []string{"-O2", "-o", bin, "testdata/noopmilter.c", "-lmilter", "-lpthread"}
	if holdSteps {
		args = append(args, "-DHOLD_STEPS")
	}
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("building the C no-op milter (apt-get install gcc libmilter-dev): %v\n%s", err, out)
	}
	sock := dir + "/noop.sock"
	conn := "unix:" + sock
	port := 0
	if !unix {
		port = postfixtest.FreePort(t)
		conn = fmt.Sprintf("inet:%d@127.0.0.1", port)
	}
	cmd := exec.Command(bin, conn)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if unix {
			if _, err := os.Stat(sock); err == nil {
				os.Chmod(sock, 0o666)
				return "unix:" + sock, cmd.Process.Pid
			}
		} else if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return fmt.Sprintf("inet:127.0.0.1:%d", port), cmd.Process.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the C no-op milter did not start")
	return "", 0
}

// TestPerfMilterLatencyAgainstTheNoop: how long a message's SMTP session
// through Postfix takes with stray's milter, with the C libmilter no-op
// (deciding nothing; built both ways, skipping the content and with
// stray's hold-on conversation) and with no milter, one session
// at a time so that the machine is idle and what shows is latency, not
// CPU. The three Postfix instances take turns message by message, the
// order rotating each round, the milters moving between the instances
// from round to round. It separates what the milter's rate against
// the no-op loses to round-trip latency (the wake-ups of a Go server
// against a C thread blocked in read) from what it loses to CPU.
// STRAY_PERF_MILTER_LAT=N sessions per instance and round,
// STRAY_PERF_ROUNDS rounds (default 5); STRAY_PERF_UNIX=1 for a unix
// socket; STRAY_PERF_MILTER_BASE=/path/to/stray adds another build's
// milter, for an A/B.
func TestPerfMilterLatencyAgainstTheNoop(t *testing.T) {
	n := perfEnabled(t, "STRAY_PERF_MILTER_LAT")
	rounds := envInt("STRAY_PERF_ROUNDS", 5)
	sockDir := ""
	if os.Getenv("STRAY_PERF_UNIX") != "" {
		sockDir = sockTempDir(t)
	}
	s := startStrayOn(t, sockDir, milConfig+"log:\n  level: info\n")
	sink := startSmtpSink(t)
	relay := "[127.0.0.1]:" + sink[strings.LastIndexByte(sink, ':')+1:]
	spec, _ := startNoopMilter(t, sockDir != "", false)
	holdSpec, _ := startNoopMilter(t, sockDir != "", true)
	labels := []string{"bare", "stray", "noop", "noop-hold"}
	milters := []string{"", s.MilterSpec(), spec, holdSpec}
	pairs := [][2]int{{1, 2}, {1, 3}, {3, 2}, {2, 0}, {1, 0}}
	if bin := os.Getenv("STRAY_PERF_MILTER_BASE"); bin != "" {
		labels = append(labels, "base")
		milters = append(milters, startBaseMilter(t, bin, sockDir).MilterSpec())
		pairs = append(pairs, [2]int{4, 2}, [2]int{1, 4})
	}
	var instances []*postfixtest.Postfix
	for _, m := range milters {
		pf := postfixtest.Start(t, postfixtest.Options{Milter: m, Extra: map[string]string{"relayhost": relay}})
		smtpSource(t, pf.SMTP, 200, 10) // warm up
		instances = append(instances, pf)
	}
	addrs := make([]string, len(milters)) // label i's instance this round
	lat := make([][]float64, len(addrs))
	for round := 0; round < rounds; round++ {
		// The milters move from one instance to the next each round, as
		// in the throughput test.
		for i, m := range milters {
			pf := instances[(i+round)%len(instances)]
			if round > 0 {
				pf.SetMilter(m)
			}
			addrs[i] = pf.SMTP
		}
		if round > 0 {
			time.Sleep(time.Second) // the old smtpd processes go
			for _, a := range addrs {
				smtpSource(t, a, 100, 10)
			}
		}
		waitDrained(t, instances)
		got := rotate(probe(t, rotate(addrs, round), n, 1, 0), len(addrs)-round%len(addrs))
		for i := range addrs {
			lat[i] = append(lat[i], got[i]...)
		}
	}
	for i := range lat {
		sort.Float64s(lat[i])
		t.Logf("%s: p50 %.3f p90 %.3f p99 %.3f ms (%d sessions)", labels[i], pct(lat[i], .5), pct(lat[i], .9), pct(lat[i], .99), len(lat[i]))
	}
	transport := "TCP"
	if sockDir != "" {
		transport = "a unix socket"
	}
	for _, c := range pairs {
		a, b := lat[c[0]], lat[c[1]]
		lo, hi := bootDiff(a, b, .5)
		t.Logf("LATENCY over %s, %s against %s: added p50 %.3f ms (95%% interval [%.3f, %.3f]), p90 %.3f, p99 %.3f",
			transport, labels[c[0]], labels[c[1]], pct(a, .5)-pct(b, .5), lo, hi, pct(a, .9)-pct(b, .9), pct(a, .99)-pct(b, .99))
	}
}

func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}

// TestPerfMilterSoakLatencyAndMemory drives the stray binary's milter at a
// fixed rate (STRAY_SOAK_RATE, default 500 messages/s) for STRAY_SOAK
// messages of 3 recipients (one a typo), measuring each RCPT's round trip
// and the process RSS over time. Targets: p99 ≤ 1 ms, memory flat.
func TestPerfMilterSoakLatencyAndMemory(t *testing.T) {
	n := perfEnabled(t, "STRAY_SOAK")
	rate, _ := strconv.Atoi(os.Getenv("STRAY_SOAK_RATE"))
	if rate <= 0 {
		rate = 500
	}
	s := startStray(t, milConfig+"log:\n  level: info\n")
	const conns = 8
	interval := time.Second * conns / time.Duration(rate)
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	var rssMu sync.Mutex
	var rssSamples []int
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				rssMu.Lock()
				rssSamples = append(rssSamples, rss(s.cmd.Process.Pid))
				rssMu.Unlock()
			}
		}
	}()
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := miltertest.Dial(s.Milter, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			next := time.Now()
			for i := w; i < n; i += conns {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				if err := c.Mail("a@army.mil", fmt.Sprintf("Q%X", i)); err != nil {
					t.Error(err)
					return
				}
				for _, to := range []string{fmt.Sprintf("c%d@army.mil", i), fmt.Sprintf("d%d@unit%d.army.ml", i, i%100), "e@gmail.com"} {
					t0 := time.Now()
					if _, _, err := c.Rcpt(to); err != nil {
						t.Error(err)
						return
					}
					lat[w] = append(lat[w], time.Since(t0))
				}
				if code, err := c.Data(); err != nil || code != 'a' {
					t.Errorf("DATA %q %v", code, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(done)
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)] }
	t.Logf("%d messages (%d RCPTs) in %s = %.0f msg/s over %d milter connections", n, len(all), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), conns)
	t.Logf("RCPT round trip: p50 %s, p99 %s, p99.9 %s, max %s (target p99 ≤ 1ms)", q(0.5), q(0.99), q(0.999), all[len(all)-1])
	rssMu.Lock()
	if k := len(rssSamples); k > 2 {
		t.Logf("stray RSS: first %d kB, middle %d kB, last %d kB (%d samples)", rssSamples[0], rssSamples[k/2], rssSamples[k-1], k)
	}
	rssMu.Unlock()
}
