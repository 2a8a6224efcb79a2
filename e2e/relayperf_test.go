package e2e

import (
	"fmt"
	"os/exec"
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
