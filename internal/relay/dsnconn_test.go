package relay

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// postfixORCPT is the ORCPT value Postfix 3.7 sends for addr: xtext of
// its octets under the rfc822 type (seen on the wire from a real Postfix:
// ORCPT=rfc822;j+C3+B6rg@b+C3+BCcher.de for jörg@bücher.de).
func postfixORCPT(addr string) string {
	var b strings.Builder
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c > ' ' && c < 0x7f && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return "rfc822;" + b.String()
}

// An internationalised recipient's ORCPT as Postfix sends it is accepted
// with DSN on, in clear and inside STARTTLS, and the next hop gets the
// same original address (as RFC 6533's utf-8 type) and the NOTIFY.
func TestPostfixsORCPTForAUTF8AddressIsAcceptedAndPassedOnAsTheSameAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) {
		s.DSN = true
		s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}})
	addrs := []string{"jörg@bücher.de", "中文@例子.中国", "👍+tag=x@emoji.de", `"a b\c"@dömäin.de`, "plain+x=y@example.com"}
	for _, useTLS := range []bool{false, true} {
		c := rawSession(t, e.relay, useTLS)
		if r := c.cmd(fmt.Sprintf("MAIL FROM:<a@example.com> SMTPUTF8 RET=HDRS ENVID=env+2B%v", useTLS)); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("MAIL: %q", r)
		}
		for _, a := range addrs {
			if r := c.cmd(fmt.Sprintf("RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE ORCPT=%s", rcptFor(a), postfixORCPT(a))); !strings.HasPrefix(r, "250 ") {
				t.Fatalf("TLS %v: RCPT %s: %q", useTLS, a, r)
			}
		}
		if r := c.cmd("DATA"); !strings.HasPrefix(r, "354 ") {
			t.Fatalf("DATA: %q", r)
		}
		if r := c.cmd(body + "."); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("end of data: %q", r)
		}
		c.cmd("QUIT")
	}
	msgs := e.hop.messages()
	if len(msgs) != 2 {
		t.Fatalf("next hop got %d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.Mail.Return != smtp.DSNReturnHeaders || m.Mail.EnvelopeID != fmt.Sprintf("env+%v", i == 1) {
			t.Errorf("MAIL options at the next hop: %+v", m.Mail)
		}
		if strings.Contains(m.Data, "ESMTPS") != (i == 1) {
			t.Errorf("message %d: Received field does not say whether TLS was used:\n%.300s", i, m.Data)
		}
		for j, a := range addrs {
			ro := m.Rcpt[j]
			want := smtp.DSNAddressTypeUTF8
			if a == "plain+x=y@example.com" {
				want = smtp.DSNAddressTypeRFC822
			}
			if m.To[j] != rcptFor(a) || ro.OriginalRecipient != a || ro.OriginalRecipientType != want || len(ro.Notify) != 2 {
				t.Errorf("message %d, %s: next hop got %q with %+v", i, a, m.To[j], ro)
			}
		}
	}
}

// rcptFor is the recipient for an original address: itself, or one
// nearby when it is an address stray does not take at RCPT (the original
// recipient may be anything the first MTA saw).
func rcptFor(orcpt string) string {
	if strings.HasPrefix(orcpt, `"`) {
		return "quoted@dömäin.de"
	}
	return orcpt
}

func TestFixORCPTChangesOnlyAUTF8AddressUnderRFC822(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"RCPT TO:<jörg@bücher.de> ORCPT=rfc822;j+C3+B6rg@b+C3+BCcher.de\r\n", `RCPT TO:<jörg@bücher.de> ORCPT=utf-8;j\x{F6}rg@b\x{FC}cher.de` + "\r\n"},
		{"rcpt to:<x@y> NOTIFY=NEVER orcpt=RFC822;+E4+B8+AD@x  X=1\r\n", `rcpt to:<x@y> NOTIFY=NEVER ORCPT=utf-8;\x{4E2D}@x  X=1` + "\r\n"},
		{"RCPT TO:<x@y> ORCPT=rfc822;a+2B+20b+3D+C3+A9@x\r\n", `RCPT TO:<x@y> ORCPT=utf-8;a\x{2B}\x{20}b\x{3D}\x{E9}@x` + "\r\n"},
		{"RCPT TO:<x@y> ORCPT=rfc822;a+5C+C3+A9@x\r\n", `RCPT TO:<x@y> ORCPT=utf-8;a\x{5C}\x{E9}@x` + "\r\n"},
		{"RCPT TO:<x@y> ORCPT=rfc822;+F0+9F+91+8D@x\n", `RCPT TO:<x@y> ORCPT=utf-8;\x{1F44D}@x` + "\n"},
		// Unchanged:
		{"RCPT TO:<x@y> ORCPT=rfc822;plain@example.com\r\n", ""},                           // ASCII: go-smtp reads it
		{"RCPT TO:<x@y> ORCPT=utf-8;j\\x{F6}rg@x\r\n", ""},                                 // already utf-8
		{"RCPT TO:<x@y> ORCPT=rfc822;j+c3+b6rg@x\r\n", ""},                                 // lower-case hex is not xtext
		{"RCPT TO:<x@y> ORCPT=rfc822;j+C3rg@x\r\n", ""},                                    // not UTF-8
		{"RCPT TO:<x@y> ORCPT=rfc822;j+C3+B6+0Arg@x\r\n", ""},                              // a control character
		{"RCPT TO:<x@y> ORCPT=rfc822;j+C3+B6rg@x ORCPT=rfc822;k@x\r\n", ""},                // two
		{"RCPT TO:<x@y> ORCPT=rfc822;j+C3+B6rg@x>\r\n", ""},                                // the last ">" is in it
		{"RCPT TO:<\"q ORCPT=rfc822;+C3+B6\"@x>\r\n", ""},                                  // inside the path
		{"RCPT TO:<\"q> ORCPT=rfc822;+C3+B6\"@x>\r\n", ""},                                 // inside a quoted path with ">"
		{"MAIL FROM:<x@y> ORCPT=rfc822;+C3+B6@x\r\n", ""},                                  // not RCPT
		{"RCPT TO:x@y ORCPT=rfc822;+C3+B6@x\r\n", ""},                                      // no path
		{"RCPT TO:<x@y> ORCPT=rfc822;\r\n", ""},                                            // empty
		{"RCPT TO:<x@y> ORCPT=rfc822;j+C3+B6rg=@x\r\n", ""},                                // "=" is not xtext
		{"RCPT TO:<x@y> ORCPT=rfc822;j+C3+B6rg@x+\r\n", ""},                                // cut hexchar
		{"RCPT TO:<x@y> ORCPT=x400;+C3+B6\r\n", ""},                                        // another type
		{"RCPT TO:<x@y>\tORCPT=rfc822;+C3+B6@x\r\n", ""},                                   // a tab: not a field of ours
		{"RCPT TO:<x@y> ORCPT=rfc822;+ED+A0+80@x\r\n", ""},                                 // a surrogate is not UTF-8
		{"RCPT TO:<x@y> ORCPT=rfc822;+C3+B6@x" + strings.Repeat(" ", 10) + "\r\n", "keep"}, // spaces kept
	}
	for _, tc := range tests {
		got, ok := fixORCPT([]byte(tc.in))
		switch {
		case tc.want == "keep":
			if !ok || !strings.HasSuffix(string(got), strings.Repeat(" ", 10)+"\r\n") {
				t.Errorf("%q: %q", tc.in, got)
			}
		case tc.want == "":
			if ok {
				t.Errorf("%q rewritten to %q", tc.in, got)
			}
		case !ok || string(got) != tc.want:
			t.Errorf("%q: got %q (%v), want %q", tc.in, got, ok, tc.want)
		}
	}
}

// decodeUTF8AddrXtextRef decodes RFC 6533 utf-8-addr-xtext, as the
// standard says (independently of go-smtp and of the encoder).
func decodeUTF8AddrXtextRef(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], `\x{`) {
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+3:i+j], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return "", false
			}
			b.WriteRune(rune(v))
			i += j + 1
			continue
		}
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '+' || c == '=' || c == '\\' {
			return "", false
		}
		b.WriteByte(c)
		i++
	}
	return b.String(), true
}

// FuzzFixORCPT: a rewrite keeps everything up to the line's last ">" and
// every other parameter, and its ORCPT decodes to exactly the octets the
// original xtext did; a line not rewritten is returned as not changed.
func FuzzFixORCPT(f *testing.F) {
	for _, s := range []string{
		"RCPT TO:<jörg@bücher.de> ORCPT=rfc822;j+C3+B6rg@b+C3+BCcher.de\r\n",
		"RCPT TO:<x@y> NOTIFY=NEVER ORCPT=rfc822;+E4+B8+AD@x X=1\r\n",
		"RCPT TO:<\"a> ORCPT=rfc822;+C3+B6\"@x> ORCPT=rfc822;+C3+B6\r\n",
		"RCPT TO:<x@y> ORCPT=rfc822;a+2B+20b+5C+C3+A9@x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		out, ok := fixORCPT(line)
		if !ok {
			return
		}
		gt := bytes.LastIndexByte(line, '>')
		if !bytes.Equal(out[:gt+1], line[:gt+1]) {
			t.Fatalf("the path changed: %q -> %q", line, out)
		}
		a, b := strings.Split(string(line[gt+1:]), " "), strings.Split(string(out[gt+1:]), " ")
		if len(a) != len(b) {
			t.Fatalf("parameters changed: %q -> %q", line, out)
		}
		changed := 0
		for i := range a {
			if a[i] == b[i] {
				continue
			}
			changed++
			oldV := strings.TrimRight(a[i][len("ORCPT=rfc822;"):], "\r\n")
			newV, found := strings.CutPrefix(strings.TrimRight(b[i], "\r\n"), "ORCPT=utf-8;")
			if !found {
				t.Fatalf("%q -> %q", a[i], b[i])
			}
			want, ok1 := decodeXtext(oldV)
			got, ok2 := decodeUTF8AddrXtextRef(newV)
			if !ok1 || !ok2 || got != want || !utf8.ValidString(got) {
				t.Fatalf("ORCPT %q (%q) became %q (%q)", oldV, want, newV, got)
			}
		}
		if changed != 1 {
			t.Fatalf("%d parameters changed: %q -> %q", changed, line, out)
		}
	})
}

// pipeConn is a smtpConn over one end of a loopback TCP connection.
func pipeConn(t *testing.T, tlsCfg *tls.Config) (*smtpConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	client.SetDeadline(time.Now().Add(10 * time.Second))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	return newSMTPConn(server, tlsCfg, slog.New(slog.DiscardHandler), time.Minute), client
}

// readAllFrom reads what c passes until n bytes or an error.
func readN(c *smtpConn, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for len(out) < n {
		k, err := c.Read(buf)
		out = append(out, buf[:k]...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Message content (DATA after 354, BDAT chunks) passes byte for byte, even
// when it looks like commands smtpConn would change; the end of data is
// where go-smtp finds it, so that the next command is a command again.
func TestSMTPConnPassesContentUntouched(t *testing.T) {
	t.Parallel()
	c, client := pipeConn(t, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	trap := "RCPT TO:<x@y> ORCPT=rfc822;+C3+B6@x\r\nSTARTTLS\r\n"
	// "\r\r\n.\r\n" does not end go-smtp's data (the second CR breaks the
	// line end), ".\r\n" after CR LF does.
	data := "Subject: x\r\n\r\n" + trap + "a\r\r\n.\r\n" + trap + "..\r\n"
	rcpt := "RCPT TO:<x@y> ORCPT=rfc822;+C3+B6@x\r\n"
	fixed := `RCPT TO:<x@y> ORCPT=utf-8;\x{F6}@x` + "\r\n"
	go io.WriteString(client, "DATA\r\n"+data+".\r\n"+rcpt+"BDAT "+strconv.Itoa(len(trap))+"\r\n"+trap+rcpt)
	if got, err := readN(c, len("DATA\r\n")); err != nil || string(got) != "DATA\r\n" {
		t.Fatalf("%q %v", got, err)
	}
	c.Write([]byte("354 go ahead\r\n"))
	if got, err := readN(c, len(data)+3); err != nil || string(got) != data+".\r\n" {
		t.Fatalf("content: %q %v", got, err)
	}
	if got, err := readN(c, len(fixed)); err != nil || string(got) != fixed {
		t.Fatalf("after the content: %q %v", got, err)
	}
	bdat := "BDAT " + strconv.Itoa(len(trap)) + "\r\n"
	if got, err := readN(c, len(bdat)+len(trap)+len(fixed)); err != nil || string(got) != bdat+trap+fixed {
		t.Fatalf("BDAT: %q %v", got, err)
	}
	// DATA refused: what follows is commands.
	go io.WriteString(client, "DATA\r\n"+rcpt)
	readN(c, len("DATA\r\n"))
	c.Write([]byte("554 5.5.1 no valid recipients\r\n"))
	if got, err := readN(c, len(fixed)); err != nil || string(got) != fixed {
		t.Fatalf("after a refused DATA: %q %v", got, err)
	}
}

// smtpConn's STARTTLS: advertised before TLS only, what the client
// pipelined after it in clear is discarded, and inside TLS nothing but
// EHLO, HELO, NOOP, RSET and QUIT is taken before EHLO.
func TestSMTPConnStartTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) {
		s.DSN = true
		s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}})
	nc, err := net.DialTimeout("tcp", e.relay, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "EHLO client.test\r\n")
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "250 ") {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	if !strings.Contains(got, "\r\n250-STARTTLS\r\n") || !strings.Contains(got, "DSN") {
		t.Fatalf("EHLO reply:\n%s", got)
	}
	// An injected command after STARTTLS, in the same packet.
	io.WriteString(nc, "STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
	n, _ := nc.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "220 ") {
		t.Fatalf("STARTTLS: %q", buf[:n])
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := &lineConn{t: t, c: tc}
	if r := c.cmd("MAIL FROM:<a@example.com>"); !strings.HasPrefix(r, "503 ") {
		t.Errorf("MAIL before EHLO inside TLS: %q", r)
	}
	if r := c.cmd("NOOP"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("NOOP: %q (the injected MAIL was answered?)", r)
	}
	if r := c.cmd("EHLO client.test"); strings.Contains(r, "STARTTLS") || !strings.Contains(r, "250 ") {
		t.Errorf("EHLO inside TLS:\n%s", r)
	}
	if r := c.cmd("STARTTLS"); !strings.HasPrefix(r, "502 ") {
		t.Errorf("STARTTLS twice: %q", r)
	}
	if r := c.cmd("MAIL FROM:<a@example.com>"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("MAIL after EHLO: %q", r)
	}
	if r := c.cmd("RCPT TO:<ok@example.org>"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("RCPT: %q", r)
	}
	if r := c.cmd("DATA"); !strings.HasPrefix(r, "354 ") {
		t.Fatalf("DATA: %q", r)
	}
	if r := c.cmd(strings.TrimSuffix(body, "\r\n") + "\r\n."); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("end of data: %q", r)
	}
	for _, m := range e.hop.messages() {
		if m.From == "injected@example.com" || !strings.Contains(m.Data, "with ESMTPS") {
			t.Errorf("next hop got %+v", m)
		}
	}
}

// rawSession is a client session to addr after EHLO (and STARTTLS and
// EHLO again when useTLS).
func rawSession(t *testing.T, addr string, useTLS bool) *lineConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &lineConn{t: t, c: nc}
	if r := c.read(); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("greeting %q", r)
	}
	c.cmd("EHLO client.test")
	if useTLS {
		if r := c.cmd("STARTTLS"); !strings.HasPrefix(r, "220 ") {
			t.Fatalf("STARTTLS: %q", r)
		}
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c.c = tc
		c.cmd("EHLO client.test")
	}
	return c
}

// lineConn sends a command and reads its whole reply.
type lineConn struct {
	t *testing.T
	c net.Conn
}

func (l *lineConn) cmd(s string) string {
	if _, err := io.WriteString(l.c, s+"\r\n"); err != nil {
		l.t.Fatal(err)
	}
	return l.read()
}

// read reads one whole reply.
func (l *lineConn) read() string {
	s := "read"
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := l.c.Read(buf)
		out = append(out, buf[:n]...)
		if i := bytes.LastIndex(out[:max(len(out)-2, 0)], []byte("\r\n")); (i >= 0 && len(out) > i+5 && out[i+5] == ' ' || i < 0 && len(out) > 3 && out[3] == ' ') && bytes.HasSuffix(out, []byte("\r\n")) {
			return string(out)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return string(out)
			}
			l.t.Fatalf("%s: %v", s, err)
		}
	}
}

// FuzzSMTPConnStream: any client stream passes through smtpConn (no TLS;
// DATA answered with 354, so content mode is entered too) without a
// panic, and unchanged when it holds no RCPT command to fix.
func FuzzSMTPConnStream(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\n.\r\nQUIT\r\n",
		"BDAT 5\r\nRCPT BDAT 0 LAST\r\nNOOP\r\n",
		"DATA\r\na\r\r\n.\r\n.\r\nRCPT TO:<x@y> ORCPT=rfc822;+C3+B6@x\r\n",
		"STARTTLS\r\n" + strings.Repeat("x", 5000) + "\r\nNOOP\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, client := pipeConn(t, nil)
		go func() { client.Write(in); client.(*net.TCPConn).CloseWrite() }()
		var out []byte
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if n > 0 && bytes.HasSuffix(out, []byte("DATA\r\n")) {
				c.Write([]byte("354 go ahead\r\n"))
			}
			if err != nil {
				break
			}
		}
		// RCPT lines may be rewritten (fixORCPT), MAIL lines with an ENVID
		// answered (envidProblem); everything else passes as it is.
		up := bytes.ToUpper(in)
		if !bytes.Contains(up, []byte("RCPT")) && !bytes.Contains(up, []byte("ENVID")) && !bytes.Equal(out, in) {
			t.Fatalf("changed:\n%q\n%q", in, out)
		}
	})
}

// dataEndRef is where go-smtp's data reader stops in b (just past
// CR LF "." CR LF, content starting at a line's beginning), or -1: a
// plain transcription of its state machine, to check smtpConn's faster one.
func dataEndRef(b []byte) int {
	st := 0 // 0 begin, 1 dot, 2 dotCR, 3 CR, 4 data
	for i, c := range b {
		switch st {
		case 0:
			st = map[byte]int{'.': 1, '\r': 3}[c]
			if c != '.' && c != '\r' {
				st = 4
			}
		case 1:
			st = 4
			if c == '\r' {
				st = 2
			}
		case 2:
			if c == '\n' {
				return i + 1
			}
			st = 4
		case 3:
			st = 4
			if c == '\n' {
				st = 0
			}
		case 4:
			if c == '\r' {
				st = 3
			}
		}
	}
	return -1
}

// FuzzSMTPConnDataEnd: after DATA and 354, smtpConn passes exactly the
// bytes go-smtp reads as content, and the command after them is a command.
func FuzzSMTPConnDataEnd(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "a\r\r\n.\r\n.\r\n", ".\r\n", "..\r\n.\r\n", "\n.\r\n\r\n.\r\n", "x\r\n.\rx\r\n.\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		end := dataEndRef(content)
		if end < 0 {
			content = append(content, "\r\n.\r\n"...)
			if end = dataEndRef(content); end < 0 {
				t.Skip()
			}
		}
		c, client := pipeConn(t, nil)
		go func() { client.Write(append(append([]byte("DATA\r\n"), content[:end]...), "NOOP\r\n"...)) }()
		if got, err := readN(c, 6); err != nil || string(got) != "DATA\r\n" {
			t.Fatalf("%q %v", got, err)
		}
		c.Write([]byte("354 go ahead\r\n"))
		var got []byte
		buf := make([]byte, 97) // small, odd reads
		for c.mode != modeCmd || len(got) == 0 {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, content[:end]) {
			t.Fatalf("passed %q, want %q", got, content[:end])
		}
		if rest, err := readN(c, 6); err != nil || string(rest) != "NOOP\r\n" {
			t.Fatalf("after the content: %q %v", rest, err)
		}
	})
}

// memConn is a net.Conn reading from a buffer (for the benchmark).
type memConn struct {
	net.Conn
	r *bytes.Reader
}

func (m *memConn) Read(p []byte) (int, error)             { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)            { return len(p), nil }
func (m *memConn) SetReadDeadline(time.Time) error        { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error       { return nil }
func (m *memConn) SetDeadline(time.Time) error            { return nil }
func (m *memConn) RemoteAddr() net.Addr                   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (m *memConn) Close() error                           { return nil }
func (m *memConn) LocalAddr() net.Addr                    { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (m *memConn) SetKeepAlive(bool) error                { return nil }
func (m *memConn) SetKeepAlivePeriod(time.Duration) error { return nil }

// BenchmarkSMTPConnContent: 1 MB of message content (76-character lines)
// read as go-smtp reads it (4 KB at a time), straight from the connection
// and through smtpConn in content mode.
func BenchmarkSMTPConnContent(b *testing.B) {
	content := bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), (1<<20)/78)
	stream := append(append([]byte("DATA\r\n"), content...), ".\r\n"...)
	buf := make([]byte, 4096)
	drain := func(r io.Reader) {
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(int64(len(stream)))
		for range b.N {
			drain(bufio.NewReaderSize(&memConn{r: bytes.NewReader(stream)}, 4096))
		}
	})
	b.Run("smtpConn", func(b *testing.B) {
		b.SetBytes(int64(len(stream)))
		for range b.N {
			c := newSMTPConn(&memConn{r: bytes.NewReader(stream)}, nil, slog.New(slog.DiscardHandler), time.Minute)
			c.lastCode = [3]byte{'3', '5', '4'}
			drain(bufio.NewReaderSize(c, 4096))
		}
	})
}

// An ENVID the relay cannot take (RFC 3461: xtext of printable ASCII; RFC
// 6533 has no UTF-8 form for it, and Postfix refuses one too) is refused
// with a 501 that names ENVID and says why, a UTF-8 one and one with a
// bare "=" included (go-smtp said "Unable to parse MAIL ESMTP
// parameters"); what go-smtp takes is still taken, and the session goes
// on (issue 13).
func TestAMalformedENVIDIsRefusedWithA501NamingIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{modify: func(s *Server) { s.DSN = true }})
	c := dial(t, e.relay)
	for _, tc := range []struct{ envid, why string }{
		{"café", "ASCII"},
		{"caf+C3+A9", "ASCII"},
		{"a=b", `"="`},
		{"a+2b", "hex"},
		{"a+2", "hex"},
		{"", "empty"},
		{"x+7F", "ASCII"},
	} {
		r := cmd(t, c, 501, "MAIL FROM:<a@example.com> SMTPUTF8 ENVID=%s", tc.envid)
		if !strings.Contains(r.Text, "ENVID") || !strings.Contains(r.Text, tc.why) {
			t.Errorf("ENVID=%s: %q, want ENVID and %q named", tc.envid, r.Text, tc.why)
		}
	}
	for _, envid := range []string{"abc+2B4", `caf\x{E9}`, "sp+20ace", "a>b"} {
		cmd(t, c, 250, "MAIL FROM:<a@example.com> SMTPUTF8 ENVID=%s", envid)
		cmd(t, c, 250, "RSET")
	}
}

// envidProblem refuses only what go-smtp itself refuses: every MAIL
// command it finds a problem in gets a refusal from a go-smtp server with
// DSN and SMTPUTF8 on (its own words, but a refusal).
func FuzzENVIDProblemRefusesOnlyWhatGoSMTPRefuses(f *testing.F) {
	for _, s := range []string{"ENVID=caf\u00e9", "ENVID=caf+C3+A9", "ENVID=a=b", "ENVID=a+2b", "ENVID=", "ENVID", "envid=x+7F SIZE=1",
		"ENVID=a ENVID=\u00e9", "SMTPUTF8 ENVID=ok+2B1", "ENVID=\u0131", "ENVID=a>b ENVID=\u00e9", "RET=HDRS ENVID=+4A+4"} {
		f.Add(s)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &hopSession{h: &nextHop{}, c: c}, nil }))
	srv.Domain = "reference.test"
	srv.EnableSMTPUTF8, srv.EnableDSN = true, true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(l)
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, params string) {
		line := "MAIL FROM:<a@example.com> " + params
		if strings.ContainsAny(line, "\r\n") || len(line) > 1000 {
			t.Skip()
		}
		why := envidProblem([]byte(line + "\r\n"))
		if why == "" {
			return
		}
		c, err := postfixtest.Dial(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if r, err := c.Cmd("EHLO client.test"); err != nil || r.Code != 250 {
			t.Fatalf("EHLO: %v %v", r, err)
		}
		if r, err := c.Cmd("%s", line); err != nil || r.Code == 250 {
			t.Fatalf("%q: refused here (%s), taken by go-smtp: %v %v", line, why, r, err)
		}
	})
}
