package e2e

import (
	"fmt"
	"os"
	"os/exec"
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

func median(d []float64) float64 {
	s := append([]float64(nil), d...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestPerfPostfixThroughputWithAndWithoutMilter: Postfix's message rate with
// the stray milter against the same Postfix without it, alternating rounds
// in one run. Target: ratio ≥ 0.90.
func TestPerfPostfixThroughputWithAndWithoutMilter(t *testing.T) {
	n := perfEnabled(t, "STRAY_PERF_MESSAGES")
	if n <= 0 {
		n = 3000
	}
	sockDir := ""
	if os.Getenv("STRAY_PERF_UNIX") != "" {
		dir, err := os.MkdirTemp("", "stray-sock-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755) // smtpd runs as postfix
		t.Cleanup(func() { os.RemoveAll(dir) })
		sockDir = dir
	}
	s := startStrayOn(t, sockDir, milConfig+"log:\n  level: info\n")
	t.Logf("milter at %s, GOMAXPROCS=%q", s.MilterSpec(), os.Getenv("GOMAXPROCS"))
	sink := startSmtpSink(t)
	relay := "[127.0.0.1]:" + sink[strings.LastIndexByte(sink, ':')+1:]
	bare := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{"relayhost": relay}})
	with := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec(), Extra: map[string]string{"relayhost": relay}})
	pol := postfixtest.Start(t, postfixtest.Options{Policy: s.Policy, Extra: map[string]string{"relayhost": relay}})
	// Optionally a C libmilter no-op with the same conversation: what the
	// milter protocol itself costs Postfix on this machine.
	var noop *postfixtest.Postfix
	noopPid := 0
	if os.Getenv("STRAY_PERF_CMILTER") != "" {
		var spec string
		spec, noopPid = startNoopMilter(t)
		noop = postfixtest.Start(t, postfixtest.Options{Milter: spec, Extra: map[string]string{"relayhost": relay}})
	}
	for _, pf := range []*postfixtest.Postfix{bare, with, pol, noop} {
		if pf != nil {
			smtpSource(t, pf.SMTP, 200, 10) // warm up
		}
	}
	rounds, _ := strconv.Atoi(os.Getenv("STRAY_PERF_ROUNDS"))
	if rounds <= 0 {
		rounds = 5
	}
	var rb, rw, rp, rc []float64
	var cpuMilter, cpuPolicy, cpuNoop int
	for round := 0; round < rounds; round++ {
		if noop != nil {
			c := cpuTicks(noopPid)
			rc = append(rc, float64(n)/smtpSource(t, noop.SMTP, n, 10).Seconds())
			cpuNoop += cpuTicks(noopPid) - c
		}
		db := smtpSource(t, bare.SMTP, n, 10)
		c0 := cpuTicks(s.cmd.Process.Pid)
		dw := smtpSource(t, with.SMTP, n, 10)
		c1 := cpuTicks(s.cmd.Process.Pid)
		dp := smtpSource(t, pol.SMTP, n, 10)
		c2 := cpuTicks(s.cmd.Process.Pid)
		cpuMilter += c1 - c0
		cpuPolicy += c2 - c1
		rb = append(rb, float64(n)/db.Seconds())
		rw = append(rw, float64(n)/dw.Seconds())
		rp = append(rp, float64(n)/dp.Seconds())
		t.Logf("round %d: bare %.0f msg/s, with stray milter %.0f msg/s, with stray policy server %.0f msg/s", round+1, rb[round], rw[round], rp[round])
		if noop != nil {
			t.Logf("round %d: with the C libmilter no-op %.0f msg/s", round+1, rc[round])
		}
	}
	t.Logf("stray CPU per message: milter %.0f µs, policy server %.0f µs", float64(cpuMilter)*1e4/float64(rounds*n), float64(cpuPolicy)*1e4/float64(rounds*n))
	t.Logf("median: bare %.0f msg/s, milter %.0f msg/s (ratio %.3f), policy server %.0f msg/s (ratio %.3f); target ≥ 0.90",
		median(rb), median(rw), median(rw)/median(rb), median(rp), median(rp)/median(rb))
	// Paired: each round's ratio against the bare run next to it, which
	// cancels slow drifts in the machine's load.
	var pw, pp []float64
	for i := range rb {
		pw = append(pw, rw[i]/rb[i])
		pp = append(pp, rp[i]/rb[i])
	}
	t.Logf("median of per-round ratios: milter %.3f, policy server %.3f", median(pw), median(pp))
	if noop != nil {
		var pc []float64
		for i := range rb {
			pc = append(pc, rc[i]/rb[i])
		}
		t.Logf("C libmilter no-op: median %.0f msg/s (ratio %.3f), median of per-round ratios %.3f, CPU per message %.0f µs; stray milter against it: %.3f",
			median(rc), median(rc)/median(rb), median(pc), float64(cpuNoop)*1e4/float64(rounds*n), median(rw)/median(rc))
	}
}

// startNoopMilter builds testdata/noopmilter.c (gcc and Debian's
// libmilter-dev) and runs it on a unix socket Postfix can reach.
func startNoopMilter(t *testing.T) (spec string, pid int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "stray-noop-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := dir + "/noopmilter"
	if out, err := exec.Command("gcc", "-O2", "-o", bin, "testdata/noopmilter.c", "-lmilter", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("building the C no-op milter (apt-get install gcc libmilter-dev): %v\n%s", err, out)
	}
	sock := dir + "/noop.sock"
	cmd := exec.Command(bin, "unix:"+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			os.Chmod(sock, 0o666)
			return "unix:" + sock, cmd.Process.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the C no-op milter did not start")
	return "", 0
}

// cpuTicks is a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return u + st
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
