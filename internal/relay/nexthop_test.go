package relay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

// scriptedHop is a next hop written line by line, strict about
// pipelining: with PIPELINING offered it answers MAIL only after the RCPT
// that should come with it (a relay that waits for MAIL's reply times
// out); without, a command that arrives before the previous reply was
// sent is a violation.
type scriptedHop struct {
	Addr       string
	pipelining bool
	mailReply  string // default "250 2.1.0 ok"

	mu         sync.Mutex
	helo       []string
	violations []string
	conns      int
	messages   int
}

func startScriptedHop(t *testing.T, pipelining bool, mailReply string) *scriptedHop {
	t.Helper()
	h := &scriptedHop{pipelining: pipelining, mailReply: mailReply}
	if h.mailReply == "" {
		h.mailReply = "250 2.1.0 ok"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h.Addr = l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns++
			h.mu.Unlock()
			go h.serve(c)
		}
	}()
	return h
}

func (h *scriptedHop) violation(format string, args ...any) {
	h.mu.Lock()
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *scriptedHop) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	io.WriteString(c, "220 scripted.test ESMTP\r\n")
	inTxn := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		if !h.pipelining && r.Buffered() > 0 && verb != "DATA" {
			h.violation("%q pipelined without PIPELINING", line)
		}
		switch {
		case verb == "EHLO":
			h.mu.Lock()
			h.helo = append(h.helo, strings.TrimPrefix(line, "EHLO "))
			h.mu.Unlock()
			if h.pipelining {
				io.WriteString(c, "250-scripted.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			} else {
				io.WriteString(c, "250-scripted.test\r\n250 8BITMIME\r\n")
			}
		case verb == "MAIL":
			if h.pipelining {
				// The RCPT must already be on its way.
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := r.Peek(1); err != nil {
					h.violation("MAIL sent alone and waited for: %v", err)
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
			}
			io.WriteString(c, h.mailReply+"\r\n")
			inTxn = strings.HasPrefix(h.mailReply, "2")
		case verb == "RCPT":
			if !inTxn {
				io.WriteString(c, "503 5.5.1 need MAIL first\r\n")
				continue
			}
			io.WriteString(c, "250 2.1.5 ok\r\n")
		case verb == "DATA":
			io.WriteString(c, "354 go on\r\n")
			tr := textproto.NewReader(r)
			if _, err := io.ReadAll(tr.DotReader()); err != nil {
				return
			}
			h.mu.Lock()
			h.messages++
			h.mu.Unlock()
			io.WriteString(c, "250 2.0.0 queued\r\n")
			inTxn = false
		case verb == "RSET":
			inTxn = false
			io.WriteString(c, "250 2.0.0 ok\r\n")
		case verb == "QUIT":
			io.WriteString(c, "221 2.0.0 bye\r\n")
			return
		default:
			io.WriteString(c, "502 5.5.2 what\r\n")
		}
	}
}

func (h *scriptedHop) state() (helo, violations []string, conns, messages int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.helo...), append([]string(nil), h.violations...), h.conns, h.messages
}

func TestMailAndFirstRcptReachAPipeliningNextHopInOneRoundTrip(t *testing.T) {
	t.Parallel()
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			t.Parallel()
			hop := startScriptedHop(t, pipelining, "")
			e := newEnv(t, opts{modify: func(s *Server) { s.NextHop = hop.Addr }})
			c := dial(t, e.relay)
			for i := 0; i < 3; i++ {
				cmd(t, c, 250, "MAIL FROM:<a@example.com>")
				cmd(t, c, 250, "RCPT TO:<one@example.org>")
				cmd(t, c, 250, "RCPT TO:<two@example.org>")
				if d, err := c.Data(body); err != nil || d.Code != 250 {
					t.Fatalf("message %d: %v %v", i, d, err)
				}
			}
			// An abandoned transaction: its RSET goes with the next MAIL.
			cmd(t, c, 250, "MAIL FROM:<a@example.com>")
			cmd(t, c, 250, "RCPT TO:<one@example.org>")
			cmd(t, c, 250, "RSET")
			cmd(t, c, 250, "MAIL FROM:<a@example.com>")
			cmd(t, c, 250, "RCPT TO:<one@example.org>")
			if d, err := c.Data(body); err != nil || d.Code != 250 {
				t.Fatalf("after RSET: %v %v", d, err)
			}
			_, v, conns, n := hop.state()
			if len(v) > 0 || conns != 1 || n != 4 {
				t.Errorf("violations %q, %d connections, %d messages (want none, 1, 4)", v, conns, n)
			}
		})
	}
}

func TestNextHopRefusingMailGivesItsReplyToEveryRecipient(t *testing.T) {
	t.Parallel()
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			t.Parallel()
			hop := startScriptedHop(t, pipelining, "550 5.7.1 sender blocked here")
			e := newEnv(t, opts{modify: func(s *Server) { s.NextHop = hop.Addr }})
			c := dial(t, e.relay)
			cmd(t, c, 250, "MAIL FROM:<a@example.com>")
			for _, to := range []string{"one@example.org", "two@example.org"} {
				if r := cmd(t, c, 550, "RCPT TO:<%s>", to); !strings.Contains(r.Text, "5.7.1 sender blocked here") {
					t.Errorf("RCPT %s: %q", to, r.Text)
				}
			}
			// A typo is still the relay's own refusal.
			if r := cmd(t, c, 550, "RCPT TO:<x@army.ml>"); !strings.Contains(r.Text, "army.mil") {
				t.Errorf("typo: %q", r.Text)
			}
			if d, _ := c.Cmd("DATA"); d.Code/100 != 5 {
				t.Errorf("DATA without recipients: %v", d)
			}
		})
	}
}

func TestEHLOToTheNextHopUsesTheRelaysName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ helo, want string }{{"", "relay.test"}, {"out.example.com", "out.example.com"}} {
		hop := startScriptedHop(t, true, "")
		e := newEnv(t, opts{modify: func(s *Server) { s.NextHop, s.NextHopHelo = hop.Addr, tc.helo }})
		c := dial(t, e.relay)
		cmd(t, c, 250, "MAIL FROM:<a@example.com>")
		cmd(t, c, 250, "RCPT TO:<one@example.org>")
		if helo, _, _, _ := hop.state(); len(helo) != 1 || helo[0] != tc.want {
			t.Errorf("NextHopHelo %q: EHLO %q, want %q", tc.helo, helo, tc.want)
		}
	}
}

func TestStartTLSToTheNextHopUsesOneConnectionAndTheRelaysName(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	hop := startNextHopTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	e := newEnv(t, opts{modify: func(s *Server) {
		s.NextHop, s.NextHopTLS = hop.Addr, TLSRequired
		s.NextHopTLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	}})
	c := dial(t, e.relay)
	for i := 0; i < 2; i++ {
		cmd(t, c, 250, "MAIL FROM:<a@example.com>")
		cmd(t, c, 250, "RCPT TO:<tls%d@example.org>", i)
		if d, err := c.Data(body); err != nil || d.Code != 250 {
			t.Fatalf("end of data: %v %v", d, err)
		}
	}
	m := hop.messages()
	hop.mu.Lock()
	conns := len(hop.peers)
	hop.mu.Unlock()
	if len(m) != 2 || !m[0].TLS || !m[1].TLS || conns != 1 {
		t.Fatalf("%d messages (TLS %v), %d connections; want 2 over TLS on 1", len(m), len(m) > 0 && m[0].TLS, conns)
	}
	if m[0].Helo != "relay.test" {
		t.Errorf("EHLO after STARTTLS: %q, want the relay's name", m[0].Helo)
	}
}

// pinEnv is a relay in front of a STARTTLS next hop whose certificate no
// CA vouches for, with a pinned fingerprint, logging into a buffer.
func pinEnv(t *testing.T, pin Fingerprint) (*env, *syncBuf) {
	t.Helper()
	cert := selfSigned(t)
	hop := startNextHopTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	logs := &syncBuf{}
	chk, err := detect.New(detect.Knowledge{Protected: []string{"mil"}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile(policy.Config{}, "policy")
	if err != nil {
		t.Fatal(err)
	}
	g := gate.New(&gate.Engine{Checker: chk, Policy: pol}, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if pin == (Fingerprint{}) {
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		pin = sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	}
	s := &Server{Gate: g, NextHop: hop.Addr, Domain: "relay.test", DialTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second,
		NextHopTLS: TLSOpportunistic, NextHopFingerprint: &pin,
		// The system roots do not know the test certificate: only the pin
		// can let it pass.
		NextHopTLSConfig: &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}}
	return &env{relay: gatetest.Serve(t, s), gate: g, hop: hop}, logs
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPinnedNextHopFingerprint(t *testing.T) {
	t.Parallel()
	t.Run("right pin passes", func(t *testing.T) {
		t.Parallel()
		e, logs := pinEnv(t, Fingerprint{})
		c := dial(t, e.relay)
		cmd(t, c, 250, "MAIL FROM:<a@example.com>")
		cmd(t, c, 250, "RCPT TO:<pinned@example.org>")
		if d, err := c.Data(body); err != nil || d.Code != 250 {
			t.Fatalf("end of data: %v %v\n%s", d, err, logs)
		}
		if m := e.hop.messages(); len(m) != 1 || !m[0].TLS {
			t.Fatalf("next hop got %+v", m)
		}
	})
	t.Run("wrong pin refuses with 451 and says why", func(t *testing.T) {
		t.Parallel()
		wrong := Fingerprint(bytes.Repeat([]byte{0xab}, 32))
		e, logs := pinEnv(t, wrong)
		c := dial(t, e.relay)
		if r := cmd(t, c, 451, "MAIL FROM:<a@example.com>"); !strings.Contains(r.Text, "4.4.1") {
			t.Errorf("MAIL: %q", r.Text)
		}
		if n := len(e.hop.messages()); n != 0 {
			t.Errorf("next hop got %d messages", n)
		}
		l := logs.String()
		if !strings.Contains(l, "next hop certificate does not match the pinned fingerprint") || !strings.Contains(l, wrong.String()) {
			t.Errorf("log does not say why:\n%s", l)
		}
	})
	t.Run("pin requires STARTTLS", func(t *testing.T) {
		t.Parallel()
		plain := startNextHop(t)
		pin := Fingerprint(bytes.Repeat([]byte{0xab}, 32))
		e := newEnv(t, opts{modify: func(s *Server) { s.NextHop, s.NextHopFingerprint = plain.Addr, &pin }})
		c := dial(t, e.relay)
		cmd(t, c, 451, "MAIL FROM:<a@example.com>")
	})
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		code  int
		lines []string
		bad   bool
	}{
		{"250 ok\r\n", 250, []string{"ok"}, false},
		{"250-a\r\n250-PIPELINING\r\n250 SIZE 10\r\n", 250, []string{"a", "PIPELINING", "SIZE 10"}, false},
		{"354\r\n", 354, []string{""}, false},
		{"550 5.1.1 no\n", 550, []string{"5.1.1 no"}, false},
		{"250-a\r\n251 b\r\n", 0, nil, true},
		{"25 short\r\n", 0, nil, true},
		{"2500 x\r\n", 0, nil, true},
		{"abc ok\r\n", 0, nil, true},
		{"650 x\r\n", 0, nil, true},
		{"250-never ends\r\n", 0, nil, true},
		{"", 0, nil, true},
	}
	for _, tc := range tests {
		code, lines, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), maxReplyLine), true)
		if (err != nil) != tc.bad || code != tc.code || strings.Join(lines, "|") != strings.Join(tc.lines, "|") {
			t.Errorf("%q: %d %q %v", tc.in, code, lines, err)
		}
	}
	e := replyError(550, []string{"5.1.1 <x@example.org>: no such user", "5.1.1 second line"})
	if e.Code != 550 || e.EnhancedCode != [3]int{5, 1, 1} || e.Message != "<x@example.org>: no such user\nsecond line" {
		t.Errorf("replyError: %+v", e)
	}
	if e := replyError(451, []string{"4.7.1.2 odd"}); e.EnhancedCode != [3]int{} || e.Message != "4.7.1.2 odd" {
		t.Errorf("replyError without a valid enhanced code: %+v", e)
	}
}

// FuzzReadReply: any bytes either parse into a reply that prints back to
// the same reply, or are refused; never a panic or an unbounded read.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250-PIPELINING\r\n250 SIZE 10\r\n", "354\r\n", "550-5.1.1 a\r\n550 5.1.1 b\r\n", "421 4.3.2 bye\n", "250-x\r\n", "2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, lines, err := readReply(bufio.NewReaderSize(bytes.NewReader(b), maxReplyLine), true)
		if err != nil {
			return
		}
		if code < 200 || code > 599 || len(lines) == 0 || len(lines) > maxReplyLines {
			t.Fatalf("%q: code %d, %d lines", b, code, len(lines))
		}
		var out bytes.Buffer
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			fmt.Fprintf(&out, "%d%s%s\r\n", code, sep, l)
		}
		code2, lines2, err := readReply(bufio.NewReaderSize(&out, maxReplyLine), true)
		if err != nil || code2 != code || strings.Join(lines2, "\n") != strings.Join(lines, "\n") {
			t.Fatalf("%q: reprinted reply parses as %d %q %v", b, code2, lines2, err)
		}
		se := replyError(code, lines)
		if se.Code != code || (se.EnhancedCode != [3]int{} && se.EnhancedCode[0] != code/100) {
			t.Fatalf("%q: %+v", b, se)
		}
	})
}

// FuzzDotWriter: the content, written in arbitrary pieces, goes out as
// net/textproto's DotWriter sends it (go-smtp's client used that), for
// content without a bare CR (there textproto's quirk doubles CRs).
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n", ".\r\n..x\n.\n", "no newline", "\r\n.\r\n", "x\n.y"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\r")) {
			return
		}
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		dw := tw.DotWriter()
		dw.Write(b)
		dw.Close()

		var got bytes.Buffer
		bw := bufio.NewWriterSize(&got, 16)
		var d dotWriter
		d.reset(bw, true)
		n := int(step%17) + 1
		for p := b; len(p) > 0; {
			k := min(n, len(p))
			if w, err := d.Write(p[:k]); err != nil || w != k {
				t.Fatal(w, err)
			}
			p = p[k:]
		}
		if err := d.finish(); err != nil {
			t.Fatal(err)
		}
		bw.WriteString(".\r\n")
		bw.Flush()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%q in pieces of %d:\n got %q\nwant %q", b, n, got.Bytes(), want.Bytes())
		}
	})
}

// A message larger than a BDAT chunk, with lines that start with a dot and
// bare LFs, arrives as it would have with DATA: LFs as CRLF, dots as sent.
func TestLargeMessageArrivesIntactInChunksAndWithData(t *testing.T) {
	t.Parallel()
	var msg strings.Builder
	msg.WriteString("Subject: big\r\n\r\n")
	for i := 0; msg.Len() < 3*bdatChunk+100; i++ {
		fmt.Fprintf(&msg, ".line %d with a leading dot\nand a bare LF\r\n", i)
	}
	want := strings.ReplaceAll(strings.ReplaceAll(msg.String(), "\r\n", "\n"), "\n", "\r\n")
	e := newEnv(t, opts{}) // go-smtp's server: CHUNKING and PIPELINING
	c := dial(t, e.relay)
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<big@example.org>")
	// postfixtest's Data dot-stuffs and sends CRLF; send the bare LFs raw.
	if r, _ := c.Cmd("DATA"); r.Code != 354 {
		t.Fatalf("DATA: %v", r)
	}
	stuffed := strings.ReplaceAll("\n"+msg.String(), "\n.", "\n..")[1:]
	if r, err := c.Pipeline(stuffed + "."); err != nil || r[0].Code != 250 {
		t.Fatalf("end of data: %v %v", r, err)
	}
	m := e.hop.messages()
	if len(m) != 1 || !strings.HasSuffix(m[0].Data, want) || !strings.HasPrefix(m[0].Data, "Received: ") {
		got := m[0].Data[strings.Index(m[0].Data, "Subject: big"):]
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("next hop got %d messages; content differs at byte %d: got %q, want %q", len(m), i, got[max(0, i-20):min(len(got), i+40)], want[max(0, i-20):min(len(want), i+40)])
	}
}

// A refusal at the end of a message sent in several BDAT chunks reaches
// the client verbatim, and the next-hop session stays in step: the next
// message on it passes.
func TestRefusalOfAChunkedMessageReachesTheClientAndTheSessionGoesOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	c := dial(t, e.relay)
	big := body + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 3*bdatChunk/100) + "REFUSE-DATA\r\n"
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<ok@example.org>")
	if d, err := c.Data(big); err != nil || d.Code != 554 || !strings.Contains(d.Text, "5.6.0 next hop: content refused") {
		t.Fatalf("end of a refused chunked message: %v %v", d, err)
	}
	for i := 0; i < 2; i++ {
		cmd(t, c, 250, "MAIL FROM:<a@example.com>")
		cmd(t, c, 250, "RCPT TO:<after%d@example.org>", i)
		if d, err := c.Data(body + strings.Repeat("z\r\n", i*bdatChunk)); err != nil || d.Code != 250 {
			t.Fatalf("message %d after the refusal: %v %v", i, d, err)
		}
	}
	if m := e.hop.messages(); len(m) != 2 || m[1].To[0] != "after1@example.org" {
		t.Fatalf("next hop got %d messages", len(m))
	}
	e.hop.mu.Lock()
	conns := len(e.hop.peers)
	e.hop.mu.Unlock()
	if conns != 1 {
		t.Errorf("%d next-hop connections, want the one kept in step", conns)
	}
}
