package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// serveInBackground runs "stray serve" with a policy listener on a free
// loopback port and the given extra arguments until the test ends. It
// returns the log, the policy address and a function that stops serve
// and returns its exit code.
func serveInBackground(t *testing.T, cfgBody string, args ...string) (logs *lockedLog, policyAddr string, stop func() int) {
	t.Helper()
	policyAddr = fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	cfg := filepath.Join(t.TempDir(), "stray.yaml")
	body := fmt.Sprintf("listen:\n  milter: \"\"\n  http: \"\"\n  policy: %s\nstore: \"\"\nshutdown_timeout: 2s\nlog:\n  level: debug\n%s", policyAddr, cfgBody)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	logs = &lockedLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"serve", "--config", cfg}, args...), Stdio{In: strings.NewReader(""), Out: io.Discard, Err: logs})
	}()
	stopped := false
	stop = func() int {
		if stopped {
			return -1
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(15 * time.Second):
			t.Fatalf("serve did not stop within 15s:\n%s", logs.String())
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return logs, policyAddr, stop
}

// waitLog waits up to timeout for s in the log.
func waitLog(logs *lockedLog, s string, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(logs.String(), s) {
			return true
		}
	}
	return false
}

// warnings are the log's WARN lines that contain s.
func warnings(logs *lockedLog, s string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// TestServeWarnsAtStartAboutMTAMapsThatReachALookalike is issue 17 point 8:
// virtual aliases and BCC maps add recipients after stray's RCPT-time
// check, so serve reads them from the Postfix it serves and warns.
func TestServeWarnsAtStartAboutMTAMapsThatReachALookalike(t *testing.T) {
	t.Parallel()
	maps := t.TempDir()
	virtual := filepath.Join(maps, "virtual")
	bcc := filepath.Join(maps, "recipient_bcc")
	os.WriteFile(virtual, []byte("# forwarding\ninfo@example.com  x@army.ml\nsales@example.com  y@army.mil\n"), 0o644)
	os.WriteFile(bcc, []byte("ceo@example.com archive@gmial.com\n"), 0o644)
	postfixtest.Require(t)
	if out, err := exec.Command("postmap", "hash:"+virtual).CombinedOutput(); err != nil {
		t.Fatalf("postmap: %v\n%s", err, out)
	}
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{
		"virtual_alias_maps": "hash:" + virtual,
		"recipient_bcc_maps": "texthash:" + bcc,
		"always_bcc":         "copies@army.mil",
	}})
	confDir := filepath.Join(pf.Dir, "etc") // postfixtest's layout
	if _, err := os.Stat(filepath.Join(confDir, "main.cf")); err != nil {
		t.Fatalf("postfixtest's config directory moved: %v", err)
	}

	logs, _, stop := serveInBackground(t, "detect:\n  protect: [army.mil]\n", "--postfix-config", confDir)
	if !waitLog(logs, "checked the MTA's maps", 30*time.Second) {
		t.Fatalf("no start-up check of the MTA's maps:\n%s", logs.String())
	}
	for _, tc := range []struct{ target, source, param string }{
		{"x@army.ml", virtual + ":2", "virtual_alias_maps"},
		{"archive@gmial.com", bcc + ":1", "recipient_bcc_maps"},
	} {
		w := warnings(logs, "target="+tc.target)
		if len(w) != 1 || !strings.Contains(w[0], "source="+tc.source) || !strings.Contains(w[0], "param="+tc.param) {
			t.Errorf("%s: want one warning naming %s and %s, got %q", tc.target, tc.source, tc.param, w)
		}
	}
	for _, clean := range []string{"y@army.mil", "copies@army.mil"} {
		if w := warnings(logs, clean); len(w) != 0 {
			t.Errorf("warned about %s, which is no lookalike: %q", clean, w)
		}
	}
	t.Logf("the warnings:\n%s", strings.Join(warnings(logs, "lookalike"), "\n"))
	if !strings.Contains(logs.String(), "lookalikes=2") {
		t.Errorf("the summary does not count 2 lookalikes:\n%s", logs.String())
	}
	if code := stop(); code != ExitOK {
		t.Errorf("serve exited %d:\n%s", code, logs.String())
	}
}

func TestServeIsSilentAboutMTAMapsWithoutPostconf(t *testing.T) {
	t.Parallel()
	logs, policyAddr, stop := serveInBackground(t, "detect:\n  protect: [army.mil]\n", "--postconf", filepath.Join(t.TempDir(), "postconf"))
	if !waitLog(logs, "MTA maps not checked: no postconf", 10*time.Second) {
		t.Fatalf("the check did not run:\n%s", logs.String())
	}
	if c, err := net.DialTimeout("tcp", policyAddr, 2*time.Second); err != nil {
		t.Errorf("policy listener: %v", err)
	} else {
		c.Close()
	}
	if code := stop(); code != ExitOK {
		t.Errorf("serve exited %d", code)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=INFO")) && strings.Contains(l, "MTA") {
			t.Errorf("said something without postconf: %s", l)
		}
	}
}

// TestAHangingPostconfNeverDelaysServe: the check runs beside the
// listeners, and stopping serve stops it.
func TestAHangingPostconfNeverDelaysServe(t *testing.T) {
	t.Parallel()
	hang := filepath.Join(t.TempDir(), "postconf")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	logs, policyAddr, stop := serveInBackground(t, "", "--postconf", hang)
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", policyAddr, time.Second); err == nil {
			c.Close()
			break
		}
	}
	if err != nil {
		t.Fatalf("policy listener not up while postconf hangs: %v\n%s", err, logs.String())
	}
	if code := stop(); code != ExitOK {
		t.Errorf("serve exited %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("serve took %v to start and stop with a hanging postconf", took)
	}
}

// lockedLog is a log destination safe for concurrent writes.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
