package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// perfTarget is where a measurement sends: the next hop itself or a relay
// process in front of it (pid, for its CPU time; with tree, the CPU time of
// the process and of its children, live and ended, as for a Postfix master
// and its smtpd processes).
type perfTarget struct {
	name, addr string
	pid        int
	tree       bool
}

// cpu is the target's CPU time so far (0 without a pid).
func (tg perfTarget) cpu(t *testing.T) time.Duration {
	if !tg.tree {
		return cpuTime(t, tg.pid)
	}
	return cpuTree(t, tg.pid)
}

func names(ts []perfTarget) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name+"="+t.addr)
	}
	return out
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// bootDiff is a 95 % bootstrap interval of pct(a, p) - pct(b, p): both
// samples resampled with replacement, 2000 times, with a fixed seed (the
// same data give the same interval). A p99 over a few hundred sessions on
// a shared machine moves by milliseconds between runs; the interval says
// whether a difference is more than that.
func bootDiff(a, b []float64, p float64) (lo, hi float64) {
	if len(a) == 0 || len(b) == 0 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	diffs := make([]float64, n)
	ra, rb := make([]float64, len(a)), make([]float64, len(b))
	for i := range diffs {
		for j := range ra {
			ra[j] = a[rng.IntN(len(a))]
		}
		for j := range rb {
			rb[j] = b[rng.IntN(len(b))]
		}
		sort.Float64s(ra)
		sort.Float64s(rb)
		diffs[i] = pct(ra, p) - pct(rb, p)
	}
	sort.Float64s(diffs)
	return pct(diffs, .025), pct(diffs, .975)
}

// pct is the p-quantile of sorted samples.
func pct(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	return s[int(float64(len(s)-1)*p)]
}

// cpuTime is a process's user and system CPU time (0 for pid 0).
func cpuTime(t *testing.T, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	f, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return ticks(f, 14, 15)
}

// cpuTree is the CPU time of pid, of its children that ended (and were
// waited for), and of its live children.
func cpuTree(t *testing.T, pid int) time.Duration {
	f, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	sum := ticks(f, 14, 15, 16, 17)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cf, err := procStat(child); err == nil && cf[4] == strconv.Itoa(pid) {
			sum += ticks(cf, 14, 15)
		}
	}
	return sum
}

// procStat is /proc/PID/stat's fields, numbered from 1 as proc(5) does
// (field 0 is empty); the command name (2) may hold spaces and is left out.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	return append([]string{"", strconv.Itoa(pid), ""}, strings.Fields(s[strings.LastIndexByte(s, ')')+2:])...), nil
}

// ticks sums the fields (clock ticks, 100 Hz) as a duration.
func ticks(f []string, fields ...int) time.Duration {
	var n int64
	for _, i := range fields {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return time.Duration(n) * 10 * time.Millisecond
}

// perfBody is a message of about 2 kB, as smtp-source -l 2048 sends.
var perfBody = "From: a@army.mil\r\nTo: c@army.mil\r\nSubject: probe\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 26)

// rotate is s rotated left by k.
func rotate[T any](s []T, k int) []T {
	k %= len(s)
	return append(append([]T(nil), s[k:]...), s[:k]...)
}

// probe sends n messages to each address, one per SMTP session, the
// addresses taking turns message by message, from conc clients; with rate
// > 0 the sessions start on a fixed schedule of rate per second in all (an
// open-loop load that does not saturate the machine). It returns each
// address's latencies in ms: connect to the reply to the final dot.
func probe(t *testing.T, addrs []string, n, conc, rate int) [][]float64 {
	t.Helper()
	out := make([][]float64, len(addrs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var fail error
	start := time.Now()
	total := n * len(addrs)
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < total; i += conc {
				if rate > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
				}
				a := i % len(addrs)
				ms, err := probeOne(addrs[a])
				mu.Lock()
				if err != nil {
					fail = err
				} else {
					out[a] = append(out[a], ms)
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	if fail != nil {
		t.Fatalf("probe %v: %v", addrs, fail)
	}
	return out
}

func probeOne(addr string) (float64, error) {
	start := time.Now()
	c, err := postfixtest.Dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if r, err := c.Cmd("EHLO probe.test"); err != nil || r.Code != 250 {
		return 0, fmt.Errorf("EHLO: %v %v", r, err)
	}
	if rs, err := c.Pipeline("MAIL FROM:<a@army.mil>", "RCPT TO:<c@army.mil>"); err != nil || rs[0].Code != 250 || rs[1].Code != 250 {
		return 0, fmt.Errorf("MAIL, RCPT: %v %v", rs, err)
	}
	if d, err := c.Data(perfBody); err != nil || d.Code != 250 {
		return 0, fmt.Errorf("DATA: %v %v", d, err)
	}
	return float64(time.Since(start).Microseconds()) / 1000, nil
}

// background runs smtp-source -s sessions against addr until stopped.
func background(t *testing.T, addr string, sessions int) (stop func()) {
	t.Helper()
	cmd := exec.Command("smtp-source", "-s", strconv.Itoa(sessions), "-m", "10000000", "-l", "2048", "-f", "a@army.mil", "-t", "c@army.mil", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // at full speed before the probe starts
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

func TestBootDiffBracketsAShift(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := make([]float64, 500), make([]float64, 500)
	for i := range a {
		b[i] = rng.ExpFloat64()
		a[i] = rng.ExpFloat64() + 5
	}
	if lo, hi := bootDiff(a, b, .5); lo > 5 || hi < 5 || hi-lo > 1 {
		t.Errorf("median shifted by 5: interval [%.3f, %.3f]", lo, hi)
	}
	if lo, hi := bootDiff(b, b, .99); lo > 0 || hi < 0 {
		t.Errorf("same sample: interval [%.3f, %.3f] leaves out 0", lo, hi)
	}
}
