package e2e

// Statistics and process accounting for the performance tests.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func median(d []float64) float64 {
	s := append([]float64(nil), d...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// ratios is a[i]/b[i] for each round both have.
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		out = append(out, a[i]/b[i])
	}
	return out
}

func mean(d []float64) float64 {
	sum := 0.0
	for _, x := range d {
		sum += x
	}
	return sum / float64(len(d))
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

// bootMedian is a 95 % bootstrap interval of the median of d (per-round
// ratios, say), with a fixed seed. With a handful of rounds it is wide:
// that is the point, a ratio of 0.95 from rounds that spread ±15 % is not
// a measurement of 0.95.
func bootMedian(d []float64) (lo, hi float64) {
	if len(d) == 0 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 2000
	meds := make([]float64, n)
	r := make([]float64, len(d))
	for i := range meds {
		for j := range r {
			r[j] = d[rng.IntN(len(d))]
		}
		meds[i] = median(r)
	}
	sort.Float64s(meds)
	return pct(meds, .025), pct(meds, .975)
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

func TestBootMedianBracketsTheMedian(t *testing.T) {
	d := []float64{0.9, 0.95, 1.0, 1.05, 1.1, 0.97, 1.02}
	lo, hi := bootMedian(d)
	if lo > 1.0 || hi < 1.0 || lo < 0.9 || hi > 1.1 {
		t.Errorf("interval [%.3f, %.3f] for rounds around 1.0", lo, hi)
	}
	if lo, hi := bootMedian([]float64{2, 2, 2}); lo != 2 || hi != 2 {
		t.Errorf("constant rounds: [%v, %v]", lo, hi)
	}
}
