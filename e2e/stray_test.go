// Package e2e tests the stray binary end to end against a real Postfix
// started by the test harness (internal/postfixtest). CI installs Postfix and
// sets STRAY_REQUIRE_POSTFIX so these tests cannot silently skip there.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

var strayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stray-e2e-bin-")
	if err != nil {
		panic(err)
	}
	strayBin = filepath.Join(dir, "stray")
	out, err := exec.Command("go", "build", "-o", strayBin, "../cmd/stray").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building stray: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stray is a running `stray serve` process.
type stray struct {
	t      *testing.T
	bin    string // another build to run (A/B measurements); empty: strayBin
	cfg    string
	cmd    *exec.Cmd
	log    *syncBuffer
	env    []string
	Milter string // 127.0.0.1:PORT
	Policy string
	HTTP   string
	// more are other loopback listeners start waits for.
	more []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startStray writes a config with the given YAML and loopback listeners on
// free ports, and starts `stray serve`.
func startStray(t *testing.T, body string) *stray {
	t.Helper()
	return newStray(t, "", "", nil, func(*stray) string { return body })
}

// startStrayOn is startStray with the milter on a unix socket in sockDir
// when sockDir is not empty (Milter is then "unix:PATH").
func startStrayOn(t *testing.T, sockDir, body string) *stray {
	t.Helper()
	return newStray(t, "", sockDir, nil, func(*stray) string { return body })
}

// startStrayEnv starts stray with extra environment variables and a config
// body computed once its listener addresses are known.
func startStrayEnv(t *testing.T, env []string, body func(*stray) string) *stray {
	t.Helper()
	return newStray(t, "", "", env, body)
}

// sockTempDir is a directory for stray's milter socket that Postfix's
// smtpd, running as postfix, can reach (t.TempDir's parent is private).
func sockTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "stray-sock-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startStrayBin starts another build of stray (bin) as startStrayOn does.
func startStrayBin(t *testing.T, bin, sockDir, body string) *stray {
	t.Helper()
	return newStray(t, bin, sockDir, nil, func(*stray) string { return body })
}

func newStray(t *testing.T, bin, sockDir string, env []string, bodyFn func(*stray) string) *stray {
	t.Helper()
	s := &stray{t: t, bin: bin, log: &syncBuffer{}, env: env}
	s.Milter = fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	milterListen := "inet:" + s.Milter
	if sockDir != "" {
		s.Milter = "unix:" + filepath.Join(sockDir, "milter.sock")
		milterListen = s.Milter
	}
	s.Policy = fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	s.HTTP = fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	s.cfg = filepath.Join(t.TempDir(), "stray.yaml")
	body := bodyFn(s)
	if !strings.Contains("\n"+body, "\nlog:") {
		body += "log:\n  level: debug\n"
	}
	if !strings.Contains("\n"+body, "\nstore:") {
		body += "store: \"\"\n" // no store unless a test asks for one
	}
	reply := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "STRAY_E2E_REPLY_LISTEN="); ok {
			reply = "  reply: " + v + "\n"
		}
	}
	cfg := fmt.Sprintf("listen:\n  milter: %s\n  policy: %s\n  http: %s\n%sshutdown_timeout: 5s\n%s", milterListen, s.Policy, s.HTTP, reply, body)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("stray log:\n%s", s.log.String())
		}
	})
	return s
}

func (s *stray) start() {
	s.t.Helper()
	bin := s.bin
	if bin == "" {
		bin = strayBin
	}
	s.cmd = exec.Command(bin, "serve", "--config", s.cfg)
	s.cmd.Env = append(os.Environ(), "STRAY_CPUPROFILE="+os.Getenv("STRAY_E2E_CPUPROFILE"))
	s.cmd.Env = append(s.cmd.Env, s.env...)
	if n := os.Getenv("STRAY_E2E_GOMAXPROCS"); n != "" {
		s.cmd.Env = append(s.cmd.Env, "GOMAXPROCS="+n)
	}
	s.cmd.Stderr = s.log
	s.cmd.Stdout = s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	network, addr := "tcp", s.Milter
	if strings.HasPrefix(addr, "unix:") {
		network, addr = "unix", addr[len("unix:"):]
	}
	// Every listener the test may dial at once: they open one after
	// another, milliseconds apart.
	s.waitDial(network, addr)
	for _, a := range append([]string{s.Policy, s.HTTP}, s.more...) {
		if a != "" {
			s.waitDial("tcp", a)
		}
	}
}

// waitDial waits up to 10 s for stray to accept a connection at addr.
func (s *stray) waitDial(network, addr string) {
	s.t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout(network, addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
	}
	s.t.Fatalf("stray did not start (%s %s not listening after 10 s):\n%s", network, addr, s.log.String())
}

// MilterSpec is the milter address as Postfix's smtpd_milters takes it.
func (s *stray) MilterSpec() string {
	if strings.HasPrefix(s.Milter, "unix:") {
		return s.Milter
	}
	return "inet:" + s.Milter
}

func (s *stray) signal(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
	}
}

// kill9 kills stray with SIGKILL and waits for it.
func (s *stray) kill9() {
	s.signal(syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}

func (s *stray) stop() {
	if s.cmd == nil {
		return
	}
	s.signal(syscall.SIGCONT)
	s.signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.signal(syscall.SIGKILL)
		<-done
	}
	s.cmd = nil
}

const milConfig = `
detect:
  protect: [mil]
policy:
  allow: [partner.ml]
`

const msg = "From: a@army.mil\nTo: undisclosed-recipients:;\nSubject: test\n\nhello\n"

func codes(rs []postfixtest.Reply) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
