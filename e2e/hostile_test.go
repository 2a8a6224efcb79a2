package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/milter"
	"github.com/stray-mail/stray/internal/postfixtest"
)

// hostile is one kind of hostile client: what it does with a connection
// until the server closes it or the attack ends.
type hostile struct {
	name     string
	listener string // milter, policy, http
	talk     func(ctx context.Context, nc net.Conn)
}

// trickle writes first, then rest every interval, until a write fails or
// ctx ends.
func trickle(ctx context.Context, nc net.Conn, first, rest string, every time.Duration) {
	if _, err := io.WriteString(nc, first); err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		if _, err := io.WriteString(nc, rest); err != nil {
			return
		}
	}
}

// drain reads until the server closes nc (or ctx ends and closes it).
func drain(_ context.Context, nc net.Conn) { io.Copy(io.Discard, nc) }

var hostiles = []hostile{
	{"milter-silent", "milter", drain},
	{"milter-half-packet-of-1MiB", "milter", func(ctx context.Context, nc net.Conn) {
		// Announce a 1 MiB body chunk and send 4 KiB of it.
		p := make([]byte, 5+4096)
		binary.BigEndian.PutUint32(p, milter.MaxPacket)
		p[4] = 'B'
		if _, err := nc.Write(p); err == nil {
			drain(ctx, nc)
		}
	}},
	{"policy-silent", "policy", drain},
	{"policy-slow-request", "policy", func(ctx context.Context, nc net.Conn) {
		go drain(ctx, nc)
		trickle(ctx, nc, "request=smtpd_access_policy\n", "x=y\n", 2*time.Second)
	}},
	{"http-idle-keep-alive", "http", func(ctx context.Context, nc net.Conn) {
		if _, err := io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: stray\r\n\r\n"); err != nil {
			return
		}
		if resp, err := http.ReadResponse(bufio.NewReader(nc), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			drain(ctx, nc)
		}
	}},
	{"http-slow-headers", "http", func(ctx context.Context, nc net.Conn) {
		go drain(ctx, nc)
		trickle(ctx, nc, "GET /healthz HTTP/1.1\r\nHost: stray\r\n", "X-Slow: 1\r\n", 2*time.Second)
	}},
	{"http-slow-body", "http", func(ctx context.Context, nc net.Conn) {
		go drain(ctx, nc)
		trickle(ctx, nc, "POST /login HTTP/1.1\r\nHost: stray\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Content-Length: 100000\r\n\r\nname=", "a", time.Second)
	}},
}

// attack keeps one hostile connection of kind h open to addr until ctx
// ends, reconnecting (after a pause) whenever the server closes it.
func attack(ctx context.Context, h hostile, addr string, connects *atomic.Int64) {
	d := net.Dialer{Timeout: time.Second}
	for ctx.Err() == nil {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			connects.Add(1)
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			h.talk(ctx, nc)
			nc.Close()
			stop()
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// goodMilter is an MTA's message: negotiate, MAIL, RCPT to a typo of a
// protected domain, which must be refused with the suggestion.
func goodMilter(addr string) (time.Duration, error) {
	start := time.Now()
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(nc)
	opt := make([]byte, 12)
	binary.BigEndian.PutUint32(opt[0:], 6)
	binary.BigEndian.PutUint32(opt[4:], 0x1ff)
	binary.BigEndian.PutUint32(opt[8:], 0x1fffff)
	if err := milter.WritePacket(nc, 'O', opt); err != nil {
		return 0, err
	}
	if p, err := milter.ReadPacket(r); err != nil || p.Code != 'O' {
		return 0, fmt.Errorf("negotiation: %q, %v", p.Code, err)
	}
	milter.WritePacket(nc, 'D', []byte("M{i}\x00Q1\x00"))
	milter.WritePacket(nc, 'M', []byte("<a@army.mil>\x00"))
	if err := milter.WritePacket(nc, 'R', []byte("<b@army.ml>\x00")); err != nil {
		return 0, err
	}
	p, err := milter.ReadPacket(r)
	if err != nil {
		return 0, fmt.Errorf("RCPT: %w", err)
	}
	if p.Code != 'y' || !strings.Contains(string(p.Data), "army.mil") {
		return 0, fmt.Errorf("RCPT b@army.ml: %q %q, want a 550 naming army.mil", p.Code, p.Data)
	}
	d := time.Since(start)
	milter.WritePacket(nc, 'Q', nil)
	return d, nil
}

// goodPolicy is Postfix's policy request for the same RCPT.
func goodPolicy(addr string) (time.Duration, error) {
	start := time.Now()
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(nc, "request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=good.1\nsender=a@army.mil\nrecipient=b@army.ml\n\n")
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.Contains(line, "army.mil") {
		return 0, fmt.Errorf("policy answer %q, want a refusal naming army.mil", line)
	}
	return time.Since(start), nil
}

// goodLink is a sender following a hold link (this one is not signed, so
// the holder refuses it, but it is the holder that answers).
func goodLink(addr string) (time.Duration, error) {
	start := time.Now()
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/h/0123456789abcdef/release?e=1&s=00")
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return 0, fmt.Errorf("GET /h/: %s", resp.Status)
	}
	return time.Since(start), nil
}

// TestHostileLoadLeavesMailFlowing runs `stray serve` under a limit of 300
// file descriptors while 1,000 hostile clients hold connections to the
// milter, the policy server and the HTTP listener (silent, idle keep-alive,
// slow headers, slow bodies, half milter packets announcing 1 MiB),
// reconnecting whenever stray closes them. An MTA's milter message, a
// policy request and a hold link must each be answered within 1s, RSS stay
// under 150 MB, and the daemon keep running.
func TestHostileLoadLeavesMailFlowing(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		if os.Getenv("STRAY_REQUIRE_POSTFIX") != "" {
			t.Fatal("prlimit required (util-linux): CI installs it")
		}
		t.Skip("needs prlimit (util-linux)")
	}
	const (
		nofile   = 300
		hostileN = 1000
		attackD  = 15 * time.Second
		maxLat   = time.Second
		maxRSSkB = 150 << 10
	)
	dir := t.TempDir()
	milterAddr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	policyAddr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	cfg := filepath.Join(dir, "stray.yaml")
	writeFile(t, cfg, fmt.Sprintf(`listen:
  milter: inet:%s
  policy: %s
  http: %s
store: sqlite:%s/stray.db
hold:
  secret_file: %s/stray.key
  base_url: http://%s
detect:
  protect: [mil]
log:
  level: info
shutdown_timeout: 5s
`, milterAddr, policyAddr, httpAddr, dir, dir, httpAddr))
	log := &syncBuffer{}
	cmd := exec.Command("prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), strayBin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("stray log (last 4 KB):\n%s", tail(log.String(), 4096))
		}
	})
	pid := cmd.Process.Pid // prlimit execs stray
	waitHealthy(t, httpAddr, exited)
	if limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid)); !strings.Contains(string(limits), fmt.Sprintf("Max open files            %d", nofile)) {
		t.Fatalf("stray does not run under nofile=%d:\n%s", nofile, limits)
	}

	var peakRSS, peakFDs atomic.Int64
	sampleDone := make(chan struct{})
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	go func() {
		defer close(sampleDone)
		for sampleCtx.Err() == nil {
			if kb := int64(rss(pid)); kb > peakRSS.Load() {
				peakRSS.Store(kb)
			}
			if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil && int64(len(fds)) > peakFDs.Load() {
				peakFDs.Store(int64(len(fds)))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	baseRSS := rss(pid)

	ctx, cancel := context.WithTimeout(context.Background(), attackD)
	defer cancel()
	addrs := map[string]string{"milter": milterAddr, "policy": policyAddr, "http": httpAddr}
	var connects atomic.Int64
	var wg sync.WaitGroup
	perListener := map[string]int{}
	for i := range hostileN {
		h := hostiles[i%len(hostiles)]
		perListener[h.listener]++
		wg.Add(1)
		go func() { defer wg.Done(); attack(ctx, h, addrs[h.listener], &connects) }()
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("%d hostile clients: %v", hostileN, perListener)

	type good struct {
		name string
		do   func(string) (time.Duration, error)
		addr string
		lat  []time.Duration
	}
	goods := []*good{{"milter", goodMilter, milterAddr, nil}, {"policy", goodPolicy, policyAddr, nil}, {"hold link", goodLink, httpAddr, nil}}
	round := func(when string) {
		for _, g := range goods {
			d, err := g.do(g.addr)
			if err != nil {
				t.Errorf("%s: the good %s request failed: %v", when, g.name, err)
				continue
			}
			if d > maxLat {
				t.Errorf("%s: the good %s request took %v, want ≤ %v", when, g.name, d, maxLat)
			}
			g.lat = append(g.lat, d)
		}
	}
	for i := range 4 {
		select {
		case <-time.After(3 * time.Second):
		case err := <-exited:
			t.Fatalf("stray exited during the attack: %v", err)
		}
		round(fmt.Sprintf("under attack, round %d", i+1))
	}
	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-exited:
		t.Fatalf("stray exited during the attack: %v", err)
	default:
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("stray is gone after the attack: %v", err)
	}
	round("after the attack")
	stopSampling()
	<-sampleDone

	for _, g := range goods {
		t.Logf("good %s request latencies: %v (max %v)", g.name, g.lat, slices.Max(append(g.lat, 0)))
	}
	t.Logf("hostile connections made: %d; RSS before %d kB, peak %d kB (limit %d kB)", connects.Load(), baseRSS, peakRSS.Load(), maxRSSkB)
	t.Logf("open descriptors: peak %d of %d", peakFDs.Load(), nofile)
	if peakFDs.Load() < nofile/2 {
		t.Errorf("stray held at most %d descriptors: the attack did not fill the listeners", peakFDs.Load())
	}
	if peakRSS.Load() > maxRSSkB {
		t.Errorf("peak RSS %d kB, want < %d kB", peakRSS.Load(), maxRSSkB)
	}
	if strings.Contains(log.String(), "listener failed") {
		t.Errorf("a listener failed under the attack:\n%s", tail(log.String(), 4096))
	}
}

// waitHealthy waits until GET /healthz answers.
func waitHealthy(t *testing.T, addr string, exited <-chan error) {
	t.Helper()
	c := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("stray exited at start: %v", err)
		default:
		}
		if resp, err := c.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("stray did not start")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
