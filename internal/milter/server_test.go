package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
)

func TestNegotiationAsksOnlyForTheEnvelope(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{}, policy.Config{}))
	o := dial(t, addr).negotiate()
	if o.version != 6 {
		t.Errorf("version %d, want 6", o.version)
	}
	for _, skip := range []uint32{protNoConnect, protNoHelo, protNoHeaders, protNoBody, protNoEOH, protNRMail} {
		if o.protocol&skip == 0 {
			t.Errorf("protocol %#x does not skip %#x", o.protocol, skip)
		}
	}
	if o.actions != actAddHeader|actQuarantine|actSetSymList {
		t.Errorf("actions %#x", o.actions)
	}
}

func TestRcptToMaliIsRejectedWithSuggestionAndTheOtherRecipientKept(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}))
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@army.mil", "4ABC123")
	code, text := c.rcpt("b@army.ml")
	if code != respReplyCode || !strings.HasPrefix(text, "550 5.1.2 <b@army.ml>:") || !strings.Contains(text, "did you mean b@army.mil?") {
		t.Fatalf("army.ml: got %q %q", code, text)
	}
	if code, _ := c.rcpt("c@army.mil"); code != respContinue {
		t.Fatalf("army.mil after a reject: got %q, want continue", code)
	}
	// Clean envelope left: accepted at DATA, no content streamed.
	if code := c.data(); code != respAccept {
		t.Fatalf("DATA: got %q, want accept", code)
	}
	// The connection carries on with the next message.
	c.mail("a@army.mil", "4ABC124")
	if code, _ := c.rcpt("d@army.il"); code != respReplyCode {
		t.Fatalf("second message: got %q", code)
	}
}

// With hold.warn_header on (internal recipients), warn adds its header.
func TestHoldQuarantinesAtEndOfMessageAndWarnAddsAHeaderWhenAskedTo(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{Known: map[string]int{"westlandhigh.school.nz": 1000}}, policy.Config{})
	e := *g.Engine()
	e.WarnHeader = true
	g.Swap(&e)
	_, addr := startServer(t, g)
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@example.org", "Q1")
	if code, _ := c.rcpt("x@gmial.com"); code != respContinue {
		t.Fatalf("hold recipient refused at RCPT: %q", code)
	}
	if code, _ := c.rcpt("y@wastlandhigh.school.nz"); code != respContinue { // a weak slip: warn
		t.Fatalf("warn recipient refused at RCPT: %q", code)
	}
	if code := c.data(); code != respContinue {
		t.Fatalf("DATA: got %q, want continue (the end matters)", code)
	}
	var quarantine, header string
	for _, p := range c.eom() {
		switch p.Code {
		case respQuarantine:
			quarantine = string(p.Data)
		case respAddHeader:
			header = string(p.Data)
		}
	}
	if !strings.Contains(quarantine, "x@gmial.com looks like a typo of gmail.com") {
		t.Errorf("quarantine reason %q", quarantine)
	}
	if !strings.HasPrefix(header, "X-Stray-Warning\x00") || !strings.Contains(header, "westlandhigh.school.nz") {
		t.Errorf("header %q", header)
	}
}

func TestAuditModeNeverRefuses(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{Mode: "audit"}))
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@army.mil", "Q")
	if code, text := c.rcpt("b@army.ml"); code != respContinue {
		t.Fatalf("audit mode refused: %q %q", code, text)
	}
	if code := c.data(); code != respAccept {
		t.Fatalf("DATA %q", code)
	}
}

func TestAbortForgetsTheMessage(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{}, policy.Config{}))
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@example.org", "Q")
	c.rcpt("x@gmial.com")
	c.send(cmdAbort, nil)
	c.mail("a@example.org", "R")
	c.rcpt("y@gmail.com")
	if code := c.data(); code != respAccept {
		t.Fatalf("after abort the held recipient lingered: DATA %q", code)
	}
}

func TestGarbageAndTruncatedPacketsCloseOnlyThatConnection(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{}, policy.Config{}))
	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, MaxPacket+1)
	for name, junk := range map[string][]byte{
		"http":           []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"zero length":    {0, 0, 0, 0},
		"huge length":    huge,
		"truncated":      {0, 0, 0, 9, 'R', '<', 'a'},
		"short optneg":   {0, 0, 0, 3, 'O', 0, 6},
		"unknown":        {0, 0, 0, 1, 'Z'},
		"rcpt no fields": {0, 0, 0, 1, 'R'},
	} {
		c := dial(t, addr)
		c.nc.Write(junk)
		if tc, ok := c.nc.(*net.TCPConn); ok && name == "truncated" {
			tc.CloseWrite()
		}
		c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadAll(c.nc); err != nil && !errors.Is(err, net.ErrClosed) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%s: connection left open", name)
			}
		}
	}
	// The server still works.
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@example.org", "Q")
	if code, _ := c.rcpt("b@gmail.com"); code != respContinue {
		t.Fatalf("after garbage: %q", code)
	}
}

func TestShutdownClosesIdleConnectionsAndLetsAMessageFinish(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, newGate(t, detect.Knowledge{}, policy.Config{}))
	idle := dial(t, addr)
	idle.negotiate()
	busy := dial(t, addr)
	busy.negotiate()
	busy.mail("a@example.org", "Q")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(t, 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	time.Sleep(200 * time.Millisecond)
	// The busy connection finishes its message.
	if code, _ := busy.rcpt("b@gmail.com"); code != respContinue {
		t.Fatalf("rcpt during shutdown: %q", code)
	}
	if code := busy.data(); code != respAccept {
		t.Fatalf("data during shutdown: %q", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	idle.nc.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := idle.r.ReadByte(); err == nil {
		t.Error("idle connection still open after shutdown")
	}
}

func TestParseListen(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"inet:127.0.0.1:8891": "tcp 127.0.0.1:8891", "unix:/run/stray.sock": "unix /run/stray.sock", "127.0.0.1:1": "tcp 127.0.0.1:1", "inet6:[::1]:9": "tcp6 [::1]:9"} {
		n, a, err := ParseListen(in)
		if err != nil || n+" "+a != want {
			t.Errorf("%s: got %s %s %v", in, n, a, err)
		}
	}
	if _, _, err := ParseListen("nonsense"); err == nil {
		t.Error("nonsense accepted")
	}
}

// FuzzReadPacket: any bytes give packets or an error, never a panic or an
// allocation beyond MaxPacket.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff})
	f.Add(append([]byte{0, 0, 0, 12, 'D', 'M'}, nul("{i}", "ABC")...))
	f.Add([]byte{0, 0, 0, 9, 'R', '<', 'a', '@', 'b', '>', 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < 100; i++ {
			p, err := ReadPacket(r)
			if err != nil {
				return
			}
			if len(p.Data)+1 > MaxPacket {
				t.Fatal("packet over MaxPacket")
			}
			splitNUL(p.Data)
			// The allocation-free lookup agrees with the full parse
			// (for names given once; with duplicates the map keeps the
			// last value, the lookup the first).
			if _, kv, err := parseMacros(p.Data); err == nil {
				for k, v := range kv {
					if got, ok := macroValue(p.Data[1:], k); (!ok || got != v) && strings.Count(string(p.Data), k) < 2 {
						t.Fatalf("macroValue(%q) = %q, map has %q", k, got, v)
					}
				}
			}
			parseOptneg(p.Data)
		}
	})
}

// FuzzSession: any packet stream sent to a live server is answered or the
// connection closed; the server never crashes.
func FuzzSession(f *testing.F) {
	var seed bytes.Buffer
	WritePacket(&seed, cmdOptneg, optneg{6, 0x1ff, 0x1fffff}.bytes())
	WritePacket(&seed, cmdMail, nul("<a@army.mil>"))
	WritePacket(&seed, cmdRcpt, nul("<b@army.ml>"))
	WritePacket(&seed, cmdData, nil)
	WritePacket(&seed, cmdEOM, nil)
	f.Add(seed.Bytes())
	g := newGate(f, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Server{Sessions: GateSessions(g), IdleTimeout: time.Second}
		client, server := net.Pipe()
		s.server().Track(server)
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(b)
		client.Close()
		s.server().Wait()
	})
}

type warnings struct {
	mu   sync.Mutex
	seen []string // sender → recipient
}

func (w *warnings) Warned(queueID, sender string, r gate.RcptResult) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, queueID+" "+sender+" → "+r.Recipient+" ("+r.Decision.Finding.Suggestion+")")
}

// By default warn tells the sender, not the recipients: no X-Stray-Warning
// in the message (a stranger who got it by mistake would read stray's
// analysis), and the message is accepted at DATA, its content never
// streamed.
func TestWarnByDefaultTellsTheSenderAndAddsNoHeader(t *testing.T) {
	t.Parallel()
	w := &warnings{}
	g := newGate(t, detect.Knowledge{Known: map[string]int{"westlandhigh.school.nz": 1000}}, policy.Config{}, gate.WithWarner(w))
	_, addr := startServer(t, g)
	c := dial(t, addr)
	c.negotiate()
	c.mail("a@example.org", "Q7")
	if code, _ := c.rcpt("y@wastlandhigh.school.nz"); code != respContinue {
		t.Fatalf("warn recipient refused at RCPT: %q", code)
	}
	if code := c.data(); code != respAccept {
		t.Fatalf("DATA: got %q, want accept (nothing at the end matters)", code)
	}
	if len(w.seen) != 1 || w.seen[0] != "Q7 a@example.org → y@wastlandhigh.school.nz (y@westlandhigh.school.nz)" {
		t.Errorf("warned %q", w.seen)
	}
}
