package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/postfixtest"
	"github.com/stray-mail/stray/internal/store"
)

// hopMsg is what the fake next hop received.
type hopMsg struct {
	From string
	Mail smtp.MailOptions
	To   []string
	Rcpt []smtp.RcptOptions
	Data string
	TLS  bool   // the relay used STARTTLS to reach the next hop
	Helo string // the name the relay gave in EHLO
}

// nextHop is an in-process SMTP server standing for the MTA behind the
// relay. Recipients whose local part is "temp" get 451, "nouser" 550; a
// message whose body holds "REFUSE-DATA" gets 554 at its end.
type nextHop struct {
	mu    sync.Mutex
	msgs  []hopMsg
	conns int
	peers map[string]bool // TCP connections (a session after STARTTLS is a new one on the same)
	Addr  string
	tls   *tls.Config
	srv   *smtp.Server
}

func startNextHop(t testing.TB) *nextHop { return startNextHopTLS(t, nil) }

// startNextHopAt starts a next hop on a given address and returns a stop
// function that closes it and every session.
func startNextHopAt(t *testing.T, addr string) (*nextHop, func()) {
	t.Helper()
	h := startNextHopOn(t, nil, addr)
	return h, func() { h.srv.Close() }
}

// startNextHopTLS starts a next hop offering STARTTLS with cfg (nil: none).
func startNextHopTLS(t testing.TB, cfg *tls.Config) *nextHop {
	t.Helper()
	return startNextHopOn(t, cfg, "127.0.0.1:0")
}

func startNextHopOn(t testing.TB, cfg *tls.Config, addr string) *nextHop {
	t.Helper()
	h := &nextHop{tls: cfg}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		h.mu.Lock()
		h.conns++
		if h.peers == nil {
			h.peers = map[string]bool{}
		}
		h.peers[c.Conn().RemoteAddr().String()] = true
		h.mu.Unlock()
		return &hopSession{h: h, c: c}, nil
	}))
	s.TLSConfig = h.tls
	s.Domain = "next.test"
	s.EnableSMTPUTF8, s.EnableDSN = true, true
	s.MaxMessageBytes = 100 << 20
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	h.Addr = l.Addr().String()
	h.srv = s
	return h
}

func (h *nextHop) messages() []hopMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hopMsg(nil), h.msgs...)
}

type hopSession struct {
	h   *nextHop
	c   *smtp.Conn
	msg hopMsg
}

func (s *hopSession) Reset()        { s.msg = hopMsg{} }
func (s *hopSession) Logout() error { return nil }
func (s *hopSession) Mail(from string, o *smtp.MailOptions) error {
	s.msg = hopMsg{From: from}
	if o != nil {
		s.msg.Mail = *o
	}
	return nil
}
func (s *hopSession) Rcpt(to string, o *smtp.RcptOptions) error {
	switch strings.SplitN(to, "@", 2)[0] {
	case "temp":
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "next hop mailbox busy"}
	case "nouser":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "next hop: no such user"}
	}
	s.msg.To = append(s.msg.To, to)
	if o != nil {
		s.msg.Rcpt = append(s.msg.Rcpt, *o)
	} else {
		s.msg.Rcpt = append(s.msg.Rcpt, smtp.RcptOptions{})
	}
	return nil
}
func (s *hopSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if strings.Contains(string(b), "REFUSE-DATA") {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "next hop: content refused"}
	}
	s.msg.Data = string(b)
	_, s.msg.TLS = s.c.TLSConnectionState()
	s.msg.Helo = s.c.Hostname()
	s.h.mu.Lock()
	s.h.msgs = append(s.h.msgs, s.msg)
	s.h.mu.Unlock()
	return nil
}

// env is a relay in front of a fake next hop.
type env struct {
	relay  string
	gate   *gate.Gate
	hop    *nextHop
	st     store.Store
	holder *hold.Holder
	mu     sync.Mutex
	sent   [][]string // notifications: their recipients
}

type opts struct {
	pc     policy.Config
	hold   bool
	modify func(*Server)
}

func newEnv(t testing.TB, o opts) *env {
	t.Helper()
	e := &env{hop: startNextHop(t)}
	var gopts []gate.Option
	if o.hold {
		st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "stray.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		signer, err := hold.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		e.st = st
		e.holder = hold.New(hold.Config{Node: "n1", BaseURL: "http://127.0.0.1", ReinjectSMTP: "127.0.0.1:1", NotifySMTP: "127.0.0.1:1"}, st, signer,
			slog.New(slog.DiscardHandler), func(_ context.Context, _, _ string, to []string, _ []byte) error {
				e.mu.Lock()
				e.sent = append(e.sent, to)
				e.mu.Unlock()
				return nil
			})
		gopts = append(gopts, gate.WithReleases(e.holder))
	}
	g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}, Known: map[string]int{"gmail.com": 1000}}, o.pc, gopts...)
	e.gate = g
	s := &Server{Gate: g, NextHop: e.hop.Addr, Domain: "relay.test", DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second}
	if e.holder != nil {
		s.Holder = e.holder
	}
	if o.modify != nil {
		o.modify(s)
	}
	e.relay = gatetest.Serve(t, s)
	return e
}

func dial(t *testing.T, addr string) *postfixtest.Client {
	t.Helper()
	c, err := postfixtest.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if r, err := c.Cmd("EHLO client.test"); err != nil || r.Code != 250 {
		t.Fatalf("EHLO: %v %v", r, err)
	}
	return c
}

func cmd(t *testing.T, c *postfixtest.Client, want int, format string, args ...any) postfixtest.Reply {
	t.Helper()
	r, err := c.Cmd(format, args...)
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
	if r.Code != want {
		t.Fatalf("%s: got %q, want %d", fmt.Sprintf(format, args...), r.Text, want)
	}
	return r
}

const body = "From: a@example.com\r\nSubject: hello\r\n\r\nbody line\r\n"

func TestTypoRecipientIsRefusedWithSuggestionAndOnlyGoodOnesReachNextHop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<ok@gmail.com>")
	r := cmd(t, c, 550, "RCPT TO:<j@army.ml>")
	if !strings.Contains(r.Text, "5.1.2") || !strings.Contains(r.Text, "did you mean j@army.mil") {
		t.Errorf("refusal %q lacks 5.1.2 and the suggestion", r.Text)
	}
	cmd(t, c, 250, "RCPT TO:<other@example.org>")
	d, err := c.Data(body)
	if err != nil || d.Code != 250 {
		t.Fatalf("end of data: %v %v", d, err)
	}
	msgs := e.hop.messages()
	if len(msgs) != 1 {
		t.Fatalf("next hop got %d messages, want 1", len(msgs))
	}
	if got := strings.Join(msgs[0].To, ","); got != "ok@gmail.com,other@example.org" {
		t.Errorf("next hop recipients %q", got)
	}
	if !strings.HasPrefix(msgs[0].Data, "Received: from client.test ([127.0.0.1])") || !strings.Contains(msgs[0].Data, "by relay.test (stray relay)") {
		t.Errorf("no Received header first:\n%s", msgs[0].Data)
	}
	if !strings.Contains(msgs[0].Data, "\r\n"+body) {
		t.Errorf("message changed:\n%s", msgs[0].Data)
	}
}

func TestNextHopRepliesReachTheClientVerbatim(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	if r := cmd(t, c, 451, "RCPT TO:<temp@example.org>"); !strings.Contains(r.Text, "4.2.0 next hop mailbox busy") {
		t.Errorf("451 text %q", r.Text)
	}
	if r := cmd(t, c, 550, "RCPT TO:<nouser@example.org>"); !strings.Contains(r.Text, "5.1.1 next hop: no such user") {
		t.Errorf("550 text %q", r.Text)
	}
	cmd(t, c, 250, "RCPT TO:<ok@example.org>")
	d, err := c.Data(body + "REFUSE-DATA\r\n")
	if err != nil || d.Code != 554 || !strings.Contains(d.Text, "5.6.0 next hop: content refused") {
		t.Fatalf("end of data: %v %v", d, err)
	}
	if n := len(e.hop.messages()); n != 0 {
		t.Errorf("next hop kept %d messages", n)
	}
	// The session goes on: the next message passes.
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<ok@example.org>")
	if d, err := c.Data(body); err != nil || d.Code != 250 {
		t.Fatalf("second message: %v %v", d, err)
	}
}

func TestNextHopDownIsATemporaryFailure(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	e := newEnv(t, opts{modify: func(s *Server) { s.NextHop = dead }})
	c := dial(t, e.relay)
	if r := cmd(t, c, 451, "MAIL FROM:<a@example.com>"); !strings.Contains(r.Text, "4.4.1") {
		t.Errorf("reply %q", r.Text)
	}
}

func TestClientOutsideAllowedRangesIsRefusedAtConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) { s.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} }})
	nc, err := net.DialTimeout("tcp", e.relay, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(nc)
	if !strings.HasPrefix(string(b), "554 5.7.1 ") {
		t.Errorf("greeting %q, want 554 5.7.1", b)
	}
	if n := e.hop.conns; n != 0 {
		t.Errorf("next hop saw %d sessions", n)
	}
}

func TestMailAndRcptParametersArePassedToNextHop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) { s.DSN = true }})
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com> SIZE=%d BODY=8BITMIME RET=HDRS ENVID=env-1 SMTPUTF8", len(body))
	cmd(t, c, 250, "RCPT TO:<jörg@bücher.de> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@example.org")
	if d, err := c.Data(body); err != nil || d.Code != 250 {
		t.Fatalf("end of data: %v %v", d, err)
	}
	m := e.hop.messages()
	if len(m) != 1 {
		t.Fatalf("%d messages", len(m))
	}
	o := m[0].Mail
	if o.Size != int64(len(body)) || o.Body != smtp.Body8BitMIME || o.Return != smtp.DSNReturnHeaders || o.EnvelopeID != "env-1" || !o.UTF8 {
		t.Errorf("MAIL options at next hop: %+v", o)
	}
	if m[0].To[0] != "jörg@bücher.de" {
		t.Errorf("recipient %q", m[0].To[0])
	}
	ro := m[0].Rcpt[0]
	if len(ro.Notify) != 2 || ro.OriginalRecipient != "x@example.org" {
		t.Errorf("RCPT options at next hop: %+v", ro)
	}
}

func TestMailLoopIsRefusedByHopCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) { s.MaxHops = 5 }})
	tests := []struct {
		name string
		hops int
		want int
	}{{"under the limit", 4, 250}, {"at the limit", 5, 554}, {"far over", 40, 554}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, e.relay)
			cmd(t, c, 250, "MAIL FROM:<a@example.com>")
			cmd(t, c, 250, "RCPT TO:<ok@example.org>")
			msg := strings.Repeat("Received: from x by y; Mon, 1 Jan 2026 00:00:00 +0000\r\n", tc.hops) + body
			d, err := c.Data(msg)
			if err != nil || d.Code != tc.want {
				t.Fatalf("end of data: %v %v, want %d", d, err, tc.want)
			}
			if tc.want == 554 && !strings.Contains(d.Text, "5.4.6") {
				t.Errorf("reply %q", d.Text)
			}
		})
	}
}

func TestClientVanishingMidDataLeavesNothingAtNextHop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	nc, err := net.DialTimeout("tcp", e.relay, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(nc, "EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<ok@example.org>\r\nDATA\r\n")
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "354") {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("before 354: %q %v", got, err)
		}
		got += string(buf[:n])
	}
	// Half a message, then the connection drops.
	io.WriteString(nc, "Subject: half\r\n\r\npart of the body\r\n")
	time.Sleep(100 * time.Millisecond)
	nc.Close()
	// The relay lives on, and the next hop has nothing.
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	time.Sleep(200 * time.Millisecond)
	if n := len(e.hop.messages()); n != 0 {
		t.Errorf("next hop delivered %d partial messages", n)
	}
}

func TestHeldRecipientIsStoredNotifiedAndNeverReachesNextHop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{hold: true, pc: policy.Config{Actions: map[policy.VerdictName]policy.ActionName{"block": "hold"}}})
	tests := []struct {
		name   string
		rcpts  []string
		toNext []string
	}{
		{"mixed", []string{"ok@example.org", "j@army.ml"}, []string{"ok@example.org"}},
		{"all held", []string{"k@army.ml"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.hop.messages())
			c := dial(t, e.relay)
			cmd(t, c, 250, "MAIL FROM:<sender@example.com>")
			for _, r := range tc.rcpts {
				cmd(t, c, 250, "RCPT TO:<%s>", r)
			}
			if d, err := c.Data(body); err != nil || d.Code != 250 {
				t.Fatalf("end of data: %v %v", d, err)
			}
			msgs := e.hop.messages()[before:]
			var got []string
			for _, m := range msgs {
				got = append(got, m.To...)
			}
			if strings.Join(got, ",") != strings.Join(tc.toNext, ",") {
				t.Errorf("next hop got %v, want %v", got, tc.toNext)
			}
		})
	}
	held, err := e.st.List(context.Background(), store.Filter{States: []store.State{store.StateHeld}})
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 {
		t.Fatalf("%d held messages in the store, want 2", len(held))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		n := len(e.sent)
		e.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			if n != 2 {
				t.Errorf("%d notifications, want 2", n)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRequireTLSRefusesPlaintextMail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) { s.RequireTLS = true }})
	c := dial(t, e.relay)
	if r := cmd(t, c, 530, "MAIL FROM:<a@example.com>"); !strings.Contains(r.Text, "5.7.0") {
		t.Errorf("reply %q", r.Text)
	}
}

func TestNextHopSessionsAreReusedAndReplacedWhenTheNextHopDropsThem(t *testing.T) {
	t.Parallel()
	first, stop := startNextHopAt(t, "127.0.0.1:0")
	e := newEnv(t, opts{modify: func(s *Server) { s.NextHop = first.Addr }})
	send := func(i int) {
		t.Helper()
		c := dial(t, e.relay)
		cmd(t, c, 250, "MAIL FROM:<a@example.com>")
		cmd(t, c, 250, "RCPT TO:<r%d@example.org>", i)
		if d, err := c.Data(body); err != nil || d.Code != 250 {
			t.Fatalf("message %d: %v %v", i, d, err)
		}
		c.Close()
		time.Sleep(50 * time.Millisecond) // the relay keeps the next-hop session at logout
	}
	for i := 0; i < 3; i++ {
		send(i)
	}
	first.mu.Lock()
	conns := first.conns
	first.mu.Unlock()
	if conns != 1 || len(first.messages()) != 3 {
		t.Errorf("3 client sessions used %d next-hop sessions for %d messages, want 1 for 3", conns, len(first.messages()))
	}
	// The next hop restarts: the kept session is dead, the relay dials
	// anew and the client never notices.
	stop()
	second, _ := startNextHopAt(t, first.Addr)
	send(3)
	if m := second.messages(); len(m) != 1 || m[0].To[0] != "r3@example.org" {
		t.Fatalf("after the next hop restarted: %+v", m)
	}
}

func TestSlowClientDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) { s.ReadTimeout = 2 * time.Second }})
	// Slow clients: a byte of a command now and then, never a whole line.
	var slow []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.DialTimeout("tcp", e.relay, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "E")
		slow = append(slow, c)
	}
	start := time.Now()
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<ok@example.org>")
	if d, err := c.Data(body); err != nil || d.Code != 250 {
		t.Fatalf("while slow clients wait: %v %v", d, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("a message took %v beside slow clients", el)
	}
	// The slow ones are cut off by the read timeout.
	slow[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(slow[0])
	if !strings.HasPrefix(string(b), "220 ") {
		t.Errorf("slow client got %q", b)
	}
	if el := time.Since(start); el > 4500*time.Millisecond {
		t.Errorf("slow client kept for %v, want about the read timeout", el)
	}
}

// warn delivers; the header that tells the recipient stray's analysis is
// only there when hold.warn_header asks for it (internal recipients).
func TestWarnedRecipientIsDeliveredAndGetsTheHeaderOnlyWhenAskedTo(t *testing.T) {
	t.Parallel()
	for _, withHeader := range []bool{false, true} {
		e := newEnv(t, opts{pc: policy.Config{Actions: map[policy.VerdictName]policy.ActionName{"block": "warn"}}})
		if withHeader {
			eng := *e.gate.Engine()
			eng.WarnHeader = true
			e.gate.Swap(&eng)
		}
		c := dial(t, e.relay)
		cmd(t, c, 250, "MAIL FROM:<a@example.com>")
		cmd(t, c, 250, "RCPT TO:<j@army.ml>")
		if d, err := c.Data(body); err != nil || d.Code != 250 {
			t.Fatalf("end of data: %v %v", d, err)
		}
		m := e.hop.messages()
		if len(m) != 1 || m[0].To[0] != "j@army.ml" {
			t.Fatalf("header %v: next hop got %+v", withHeader, m)
		}
		if got := strings.Contains(m[0].Data, "\r\nX-Stray-Warning: j@army.ml looks like a typo of army.mil"); got != withHeader {
			t.Errorf("warn_header %v: X-Stray-Warning present %v", withHeader, got)
		}
	}
}
