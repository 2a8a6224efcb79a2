package detect

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// benchAddresses are the scenario C recipients: typos and legitimate domains.
func benchAddresses(b *testing.B) []string {
	var out []string
	for _, c := range loadEvalCases(b) {
		if c.Scenario == "C" {
			out = append(out, c.Rcpt)
		}
	}
	return out
}

// syntheticKnown adds n deterministic, plausible correspondent domains to
// known (the knowledge of a large organisation).
func syntheticKnown(known map[string]int, n int) map[string]int {
	r := rand.New(rand.NewPCG(1, 2))
	tlds := []string{"com", "net", "org", "de", "co.uk", "fr", "edu", "edu.au", "ac.jp", "com.br", "it", "nl", "pl"}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make(map[string]int, len(known)+n)
	for d, c := range known {
		out[d] = c
	}
	for len(out) < len(known)+n {
		l := make([]byte, 5+r.IntN(10))
		for i := range l {
			l[i] = letters[r.IntN(26+10*(i&1))]
		}
		out[fmt.Sprintf("%s.%s", l, tlds[r.IntN(len(tlds))])] = 1 + r.IntN(100)
	}
	return out
}

func benchCheck(b *testing.B, k Knowledge) {
	addrs := benchAddresses(b)
	c := mustChecker(b, k)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.Check(addrs[i%len(addrs)])
	}
}

// BenchmarkCheckKnown1k5 and BenchmarkCheckKnown120k must differ by at most
// 2× per check: lookup is sub-linear in the knowledge.
func BenchmarkCheckKnown1k5(b *testing.B) { benchCheck(b, evalKnowledge(b, "C")) }

func BenchmarkCheckKnown120k(b *testing.B) {
	k := evalKnowledge(b, "C")
	k.Known = syntheticKnown(k.Known, 120_000)
	benchCheck(b, k)
}

func BenchmarkCheckNoContext(b *testing.B) { benchCheck(b, Knowledge{}) }

// BenchmarkNewKnown120k reports the build time and the heap the Checker
// holds for 120k known domains.
func BenchmarkNewKnown120k(b *testing.B) {
	k := evalKnowledge(b, "C")
	k.Known = syntheticKnown(k.Known, 120_000)
	for b.Loop() {
		mustChecker(b, k)
	}
	b.StopTimer()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	keep := mustChecker(b, k)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(keep)
}

// BenchmarkCheckScenarioA checks the no-context recipients of the
// development corpus: typos of providers (which reach the error model's
// further explanations) and legitimate domains.
func BenchmarkCheckScenarioA(b *testing.B) {
	var addrs []string
	for _, c := range loadEvalCases(b) {
		if c.Scenario == "A" {
			addrs = append(addrs, c.Rcpt)
		}
	}
	c := mustChecker(b, Knowledge{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.Check(addrs[i%len(addrs)])
	}
}
