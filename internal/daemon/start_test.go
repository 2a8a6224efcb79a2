package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// opens counts the opens of the file at path from now on (inotify's
// IN_OPEN: os.Stat does not count, each read of the file does). Closes are
// watched too, or two opens in a row would be coalesced into one event.
func opens(t *testing.T, path string) func() int {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, path, syscall.IN_OPEN|syscall.IN_CLOSE); err != nil {
		t.Fatal(err)
	}
	n := 0
	return func() int {
		buf := make([]byte, 64<<10)
		for {
			r, err := syscall.Read(fd, buf)
			if err != nil || r <= 0 {
				return n // EAGAIN: every event so far is counted
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= r; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if ev.Mask&syscall.IN_OPEN != 0 {
					n++
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// Issue 12: New read every knowledge file twice, once to check the config
// before the store was opened and once more to build the engine. A known
// file is read once at start.
func TestNewReadsEachKnowledgeFileOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	known := filepath.Join(dir, "known.txt")
	deny := filepath.Join(dir, "deny.txt")
	for f, content := range map[string]string{known: "partner.example 7\n", deny: "army.ml army.mil\n"} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	knownReads, denyReads := opens(t, known), opens(t, deny)
	cfg := filepath.Join(dir, "stray.yaml")
	body := fmt.Sprintf("store: sqlite:%s\nhold:\n  secret_file: %s\ndetect:\n  protect: [army.mil]\n  known: [%s]\n  deny: [%s]\n",
		filepath.Join(dir, "s.db"), filepath.Join(dir, "k"), known, deny)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := knownReads(); got != 1 {
		t.Errorf("detect.known read %d times at start, want 1", got)
	}
	if got := denyReads(); got != 1 {
		t.Errorf("detect.deny read %d times at start, want 1", got)
	}
	if d.knowledge.Known["partner.example"] != 7 || d.knowledge.Deny["army.ml"] != "army.mil" {
		t.Errorf("the engine's knowledge lacks the files' content: %+v", d.knowledge)
	}
	// A reload reads them again, once.
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := knownReads(); got != 2 {
		t.Errorf("detect.known read %d times after start and one reload, want 2", got)
	}
}

// Issue 12: Close after Start, without Run, must return promptly even when
// a listener's Serve goroutine has not begun yet: a go-smtp server (relay,
// reply, sink) whose Serve starts after its Shutdown registered a listener
// nobody closed and accepted forever, and Close waited for it.
func TestCloseWithoutRunReturnsPromptly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	domains := filepath.Join(dir, "registered.txt")
	if err := os.WriteFile(domains, []byte("army.ml army.mil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t)) }
	for i := range 20 {
		body := fmt.Sprintf("store: sqlite:%s\nhold:\n  secret_file: %s\n  reply_domain: reply.example\n"+
			"listen:\n  milter: unix:%s\n  policy: %s\n  http: %s\n  metrics: %s\n  reply: %s\n  relay: %s\n  sink: %s\n"+
			"relay:\n  next_hop: 127.0.0.1:1\nsink:\n  domains: %s\n",
			filepath.Join(dir, fmt.Sprintf("s%d.db", i)), filepath.Join(dir, "k"), filepath.Join(dir, "milter.sock"),
			port(), port(), port(), port(), port(), port(), domains)
		cfg := filepath.Join(dir, "stray.yaml")
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := New(context.Background(), Options{ConfigPath: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			d.Close()
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() { d.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close without Run still blocks after 10s", i)
		}
	}
}

// Close without Start returns too, and closes the store.
func TestCloseWithoutStartReturnsPromptly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stray.yaml")
	body := fmt.Sprintf("store: sqlite:%s\nhold:\n  secret_file: %s\n", filepath.Join(dir, "s.db"), filepath.Join(dir, "k"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { d.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close without Start blocks")
	}
}

// Close after Run, or twice, is a no-op: it closed the recorder's queue
// again and panicked.
func TestCloseAfterRunOrTwiceIsHarmless(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := fmt.Sprintf("store: sqlite:%s\nhold:\n  secret_file: %s\nlisten:\n  milter: \"\"\n  policy: 127.0.0.1:%d\n  http: \"\"\n",
		filepath.Join(dir, "s.db"), filepath.Join(dir, "k"), postfixtest.FreePort(t))
	var logs lockedLog
	d, stop := runDaemon(t, body, &logs)
	stop()
	d.Close()
	d.Close()
}
