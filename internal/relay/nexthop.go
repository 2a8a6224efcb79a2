package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// nextConn is a session to the next hop: the relay's own small SMTP client.
// go-smtp's client sends one command and waits for its reply, so every
// MAIL, RCPT and DATA costs a round trip (and a wake-up of both processes on
// a busy machine), and it starts TLS only on a fresh connection. nextConn
// writes MAIL and the first RCPT together when the next hop offers
// PIPELINING (RFC 2920), lets a RSET ride with the next transaction's
// commands, upgrades the connection it has with STARTTLS, and says EHLO
// with the relay's own name. Its replies are parsed by readReply (fuzzed);
// a 4xx or 5xx becomes an *smtp.SMTPError with the next hop's text, which
// the relay answers verbatim.
type nextConn struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration // for each reply
	ext     map[string]string
	// pendingRset: a RSET was written (not yet read) to end a transaction
	// the client abandoned; its reply is read before the next command's.
	pendingRset bool
	dot         dotWriter
	bdat        bool // this message goes in BDAT chunks
	chunk       chunker
}

// maxReplyLine bounds a reply line (RFC 5321 allows 512 octets; Postfix
// sends at most about 500), maxReplyLines a multi-line reply.
const (
	maxReplyLine  = 4096
	maxReplyLines = 100
)

// errReply is a reply that does not parse as SMTP: the connection is
// dropped.
var errReply = errors.New("malformed reply from the next hop")

// readReply reads one reply: its code and, when text is set or the reply
// is a refusal (4xx, 5xx), its lines without the "NNN-"/"NNN " prefix (a
// successful reply's text is not needed on the hot path and is not kept).
func readReply(r *bufio.Reader, text bool) (int, []string, error) {
	code := 0
	var lines []string
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return 0, nil, fmt.Errorf("%w: more than %d lines", errReply, maxReplyLines)
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, nil, fmt.Errorf("%w: line longer than %d bytes", errReply, r.Size())
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		if len(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
			return 0, nil, fmt.Errorf("%w: %q", errReply, truncate(line))
		}
		c := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if n > 0 && c != code {
			return 0, nil, fmt.Errorf("%w: code %d in a %d reply", errReply, c, code)
		}
		code = c
		text = text || c >= 400
		last := true
		if len(line) > 3 {
			switch line[3] {
			case ' ':
			case '-':
				last = false
			default:
				return 0, nil, fmt.Errorf("%w: %q", errReply, truncate(line))
			}
		}
		if text {
			t := ""
			if len(line) > 4 {
				t = string(line[4:])
			}
			lines = append(lines, t)
		}
		if last {
			return code, lines, nil
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// replyError is the next hop's reply as the error the relay answers with:
// the enhanced status code taken from the text (and from the start of
// every further line, RFC 2034), the rest verbatim.
func replyError(code int, lines []string) *smtp.SMTPError {
	msg := strings.Join(lines, "\n")
	e := &smtp.SMTPError{Code: code, Message: msg}
	first, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return e
	}
	enh, ok := parseEnhanced(first, code/100)
	if !ok {
		return e
	}
	e.EnhancedCode = enh
	e.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	return e
}

// parseEnhanced parses "C.SSS.DDD" whose class matches the reply's.
func parseEnhanced(s string, class int) (smtp.EnhancedCode, bool) {
	var e smtp.EnhancedCode
	parts := strings.SplitN(s, ".", 4)
	if len(parts) != 3 {
		return e, false
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return e, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return e, false
		}
		e[i] = n
	}
	if e[0] != class {
		return e, false
	}
	return e, true
}

// nextDialer is how the relay reaches its next hop.
type nextDialer struct {
	addr    string
	helo    string
	mode    string      // TLSNone, TLSOpportunistic, TLSRequired
	tls     *tls.Config // verification (or the pin) for STARTTLS
	log     *slog.Logger
	dial    time.Duration
	timeout time.Duration
}

// dialError says why a session to the next hop could not be set up; what
// is for the log.
type dialError struct {
	what string
	err  error
}

func (e *dialError) Error() string { return e.what + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// connect opens a session to the next hop: greeting, EHLO, and STARTTLS
// on the same connection when the mode asks for it.
func (d *nextDialer) connect(ctx context.Context) (*nextConn, error) {
	nd := net.Dialer{Timeout: d.dial}
	conn, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, &dialError{"cannot reach the next hop", err}
	}
	c := newNextConn(conn, d.timeout)
	fail := func(what string, err error) (*nextConn, error) {
		c.close()
		return nil, &dialError{what, err}
	}
	c.deadline()
	if code, lines, err := readReply(c.r, true); err != nil {
		return fail("no greeting from the next hop", err)
	} else if code != 220 {
		return fail("next hop refused the session", replyError(code, lines))
	}
	if err := c.hello(d.helo); err != nil {
		return fail("next hop refused the session", err)
	}
	_, offers := c.ext["STARTTLS"]
	if !offers && d.mode == TLSRequired {
		return fail("next hop does not offer STARTTLS", errors.New("next_hop_tls is required"))
	}
	if offers && d.mode != TLSNone {
		if err := c.startTLS(d.tls); err != nil {
			if d.mode == TLSOpportunistic {
				// Postfix's "may": a next hop whose TLS fails gets the
				// message in clear, on a new connection, rather than never.
				c.close()
				d.log.Warn("STARTTLS to the next hop failed; delivering without TLS", "next_hop", d.addr, "err", err)
				plain := *d
				plain.mode = TLSNone
				return plain.connect(ctx)
			}
			return fail("STARTTLS to the next hop failed", err)
		}
		if err := c.hello(d.helo); err != nil {
			return fail("next hop refused EHLO after STARTTLS", err)
		}
	}
	return c, nil
}

func newNextConn(conn net.Conn, timeout time.Duration) *nextConn {
	c := &nextConn{conn: conn, timeout: timeout}
	c.r = bufio.NewReaderSize(conn, maxReplyLine)
	c.w = bufio.NewWriterSize(conn, 16<<10)
	return c
}

// deadline gives the next exchange CommandTimeout.
func (c *nextConn) deadline() { c.conn.SetDeadline(time.Now().Add(c.timeout)) }

// cmd writes a command and reads its reply (no pipelining).
func (c *nextConn) cmd(line string, text bool) (int, []string, error) {
	c.deadline()
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.flushAndRset(); err != nil {
		return 0, nil, err
	}
	return readReply(c.r, text)
}

// flushAndRset sends what is written and reads the reply to a RSET that
// went before it.
func (c *nextConn) flushAndRset() error {
	if err := c.w.Flush(); err != nil {
		return err
	}
	if c.pendingRset {
		c.pendingRset = false
		code, _, err := readReply(c.r, false)
		if err != nil {
			return err
		}
		if code/100 != 2 {
			return fmt.Errorf("next hop answered RSET with %d", code)
		}
	}
	return nil
}

// hello says EHLO (HELO when the next hop knows only that) and keeps the
// extensions offered.
func (c *nextConn) hello(name string) error {
	code, lines, err := c.cmd("EHLO "+name, true)
	if err != nil {
		return err
	}
	if code == 500 || code == 502 {
		if code, lines, err = c.cmd("HELO "+name, true); err != nil {
			return err
		}
		c.ext = map[string]string{}
		if code != 250 {
			return replyError(code, lines)
		}
		return nil
	}
	if code != 250 {
		return replyError(code, lines)
	}
	c.ext = make(map[string]string, len(lines))
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

// startTLS upgrades this connection.
func (c *nextConn) startTLS(cfg *tls.Config) error {
	code, lines, err := c.cmd("STARTTLS", true)
	if err != nil {
		return err
	}
	if code != 220 {
		return replyError(code, lines)
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.conn = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
	return nil
}

func (c *nextConn) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// mailLine is the MAIL command for from and the client's parameters that
// the next hop understands (as go-smtp's client wrote it: BODY=8BITMIME
// whenever it is offered).
func (c *nextConn) mailLine(from string, o *smtp.MailOptions) (string, error) {
	var b strings.Builder
	b.Grow(64 + len(from))
	b.WriteString("MAIL FROM:<")
	b.WriteString(from)
	b.WriteByte('>')
	if c.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if o != nil {
		if o.Size != 0 && c.has("SIZE") {
			b.WriteString(" SIZE=")
			b.WriteString(strconv.FormatInt(o.Size, 10))
		}
		if o.RequireTLS {
			if !c.has("REQUIRETLS") {
				return "", errors.New("next hop does not support REQUIRETLS")
			}
			b.WriteString(" REQUIRETLS")
		}
		if o.UTF8 {
			if !c.has("SMTPUTF8") {
				return "", errors.New("next hop does not support SMTPUTF8")
			}
			b.WriteString(" SMTPUTF8")
		}
		if c.has("DSN") {
			if o.Return != "" {
				b.WriteString(" RET=")
				b.WriteString(string(o.Return))
			}
			if o.EnvelopeID != "" {
				b.WriteString(" ENVID=")
				b.WriteString(xtext(o.EnvelopeID))
			}
		}
	}
	return b.String(), checkLine(b.String())
}

// rcptLine is the RCPT command for to with the DSN parameters the next
// hop understands.
func (c *nextConn) rcptLine(to string, o *smtp.RcptOptions) (string, error) {
	var b strings.Builder
	b.Grow(64 + len(to))
	b.WriteString("RCPT TO:<")
	b.WriteString(to)
	b.WriteByte('>')
	if o != nil && c.has("DSN") {
		if len(o.Notify) > 0 {
			b.WriteString(" NOTIFY=")
			for i, v := range o.Notify {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(string(v))
			}
		}
		if o.OriginalRecipient != "" {
			b.WriteString(" ORCPT=")
			b.WriteString(string(o.OriginalRecipientType))
			b.WriteByte(';')
			if o.OriginalRecipientType == smtp.DSNAddressTypeUTF8 {
				b.WriteString(utf8AddrText(o.OriginalRecipient, c.has("SMTPUTF8")))
			} else {
				b.WriteString(xtext(o.OriginalRecipient))
			}
		}
	}
	return b.String(), checkLine(b.String())
}

// checkLine refuses a command that would break the line structure.
func checkLine(s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return errors.New("smtp: a command must not contain CR or LF")
	}
	return nil
}

// xtext encodes s as RFC 3461 xtext: "+HH" for bytes outside '!'..'~',
// '+' and '='.
func xtext(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= '!' && ch <= '~' && ch != '+' && ch != '=' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('+')
		b.WriteByte(hexd[ch>>4])
		b.WriteByte(hexd[ch&15])
	}
	return b.String()
}

// utf8AddrText encodes an ORCPT utf-8 address (RFC 6533): as unitext when
// the next hop speaks SMTPUTF8 (non-ASCII kept), else as utf-8-addr-xtext
// ("\x{HEX}" for every character outside the printable ASCII set).
func utf8AddrText(s string, unitext bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '!' && r <= '~' && r != '+' && r != '=' && r != '\\':
			b.WriteRune(r)
		case r > 0x7f && unitext:
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, `\x{%X}`, r)
		}
	}
	return b.String()
}

// mailRcpt sends MAIL (when mail is not empty) and RCPT, in one write when
// the next hop offers PIPELINING, and returns MAIL's reply (nil when
// accepted or not sent) and RCPT's. err is a failure of the connection.
func (c *nextConn) mailRcpt(mail, rcpt string) (mailErr, rcptErr *smtp.SMTPError, err error) {
	c.deadline()
	if mail != "" {
		if !c.has("PIPELINING") {
			code, lines, err := c.cmd(mail, true)
			if err != nil {
				return nil, nil, err
			}
			if code/100 != 2 {
				return replyError(code, lines), nil, nil
			}
			mail = ""
		} else {
			c.w.WriteString(mail)
			c.w.WriteString("\r\n")
		}
	}
	c.w.WriteString(rcpt)
	c.w.WriteString("\r\n")
	if err := c.flushAndRset(); err != nil {
		return nil, nil, err
	}
	if mail != "" {
		code, lines, err := readReply(c.r, false)
		if err != nil {
			return nil, nil, err
		}
		if code/100 != 2 {
			// RCPT's reply (a 503 without a transaction) is read and
			// dropped: every recipient hears MAIL's refusal.
			if _, _, err := readReply(c.r, false); err != nil {
				return nil, nil, err
			}
			return replyError(code, lines), nil, nil
		}
	}
	code, lines, err := readReply(c.r, false)
	if err != nil {
		return nil, nil, err
	}
	if code/100 != 2 {
		return nil, replyError(code, lines), nil
	}
	return nil, nil, nil
}

// rset ends a transaction the client abandoned: written now and read with
// the next command when the next hop pipelines, at once when not.
func (c *nextConn) rset() error {
	if c.has("PIPELINING") && !c.pendingRset {
		c.w.WriteString("RSET\r\n")
		c.pendingRset = true
		return nil
	}
	code, _, err := c.cmd("RSET", false)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("next hop answered RSET with %d", code)
	}
	return nil
}

// bdatChunk is the size of a BDAT chunk: most messages go in one
// "BDAT n LAST".
const bdatChunk = 32 << 10

// data starts the content and returns the writer for it; end finishes it.
// When the next hop offers CHUNKING and PIPELINING (Postfix does), the
// content goes in BDAT chunks (RFC 3030): no DATA round trip, no
// dot-stuffing, and the replies are read at the end. Otherwise DATA, and
// the content is sent after 354.
func (c *nextConn) data() (*dotWriter, error) {
	c.bdat = c.has("CHUNKING") && c.has("PIPELINING")
	if c.bdat {
		c.chunk.c, c.chunk.buf, c.chunk.sent = c, c.chunk.buf[:0], 0
		c.dot.reset(&c.chunk, false)
	} else {
		code, lines, err := c.cmd("DATA", true)
		if err != nil {
			return nil, err
		}
		if code != 354 {
			if code >= 400 {
				return nil, replyError(code, lines)
			}
			return nil, fmt.Errorf("%w: %d to DATA", errReply, code)
		}
		c.dot.reset(c.w, true)
	}
	// The whole content has CommandTimeout and two minutes more (as
	// go-smtp's client's SubmissionTimeout).
	c.conn.SetDeadline(time.Now().Add(c.timeout + 2*time.Minute))
	return &c.dot, nil
}

// end writes the end of the content and reads the next hop's verdict: nil
// when it took the message, an *smtp.SMTPError when it refused it.
func (c *nextConn) end() error {
	c.deadline()
	if err := c.dot.finish(); err != nil {
		return err
	}
	replies := 1
	if c.bdat {
		c.chunk.emit(true)
		replies = c.chunk.sent
	} else {
		c.w.WriteString(".\r\n")
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	// One reply per chunk (all but the last are 250 unless something
	// failed): the first refusal is the verdict.
	var refused error
	for i := 0; i < replies; i++ {
		code, lines, err := readReply(c.r, false)
		if err != nil {
			return err
		}
		if code/100 != 2 && refused == nil {
			if code < 400 {
				return fmt.Errorf("%w: %d at the end of the message", errReply, code)
			}
			refused = replyError(code, lines)
		}
	}
	return refused
}

// chunker collects content into BDAT chunks and writes each full one.
type chunker struct {
	c    *nextConn
	buf  []byte
	sent int // chunks written
}

func (k *chunker) Write(p []byte) (int, error) {
	k.buf = append(k.buf, p...)
	return len(p), k.check()
}

func (k *chunker) WriteString(s string) (int, error) {
	k.buf = append(k.buf, s...)
	return len(s), k.check()
}

func (k *chunker) WriteByte(b byte) error {
	k.buf = append(k.buf, b)
	return k.check()
}

func (k *chunker) check() error {
	if len(k.buf) >= bdatChunk {
		k.emit(false)
	}
	_, err := k.c.w.Write(nil) // bufio.Writer keeps its first error
	return err
}

// emit writes the chunk collected so far.
func (k *chunker) emit(last bool) {
	w := k.c.w
	w.WriteString("BDAT ")
	w.WriteString(strconv.Itoa(len(k.buf)))
	if last {
		w.WriteString(" LAST")
	}
	w.WriteString("\r\n")
	w.Write(k.buf)
	k.buf = k.buf[:0]
	k.sent++
}

// quit ends the session politely (without waiting long for the reply).
func (c *nextConn) quit() {
	c.conn.SetDeadline(time.Now().Add(time.Second))
	c.w.WriteString("QUIT\r\n")
	if c.w.Flush() == nil {
		if c.pendingRset {
			readReply(c.r, false)
		}
		readReply(c.r, false)
	}
	c.conn.Close()
}

func (c *nextConn) close() { c.conn.Close() }

// dotWriter writes message content as the next hop wants it: a bare LF
// sent as CRLF (as go-smtp's client and net/textproto did), the content
// ended with CRLF, and for DATA a '.' doubled at the start of a line. It
// writes whole runs between line ends at once rather than byte by byte.
type dotWriter struct {
	w       byteSink
	stuff   bool // DATA: dot-stuffing
	midLine bool // some bytes of the current line are written
	prevCR  bool // the last byte written was CR
	empty   bool // nothing written yet
}

// byteSink is a *bufio.Writer (DATA) or a *chunker (BDAT).
type byteSink interface {
	io.Writer
	io.ByteWriter
	io.StringWriter
}

func (d *dotWriter) reset(w byteSink, stuff bool) {
	*d = dotWriter{w: w, stuff: stuff, empty: true}
}

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	if n > 0 {
		d.empty = false
	}
	for len(p) > 0 {
		if d.stuff && !d.midLine && p[0] == '.' {
			d.w.WriteByte('.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.w.Write(p)
			d.midLine, d.prevCR = true, p[len(p)-1] == '\r'
			break
		}
		cr := d.prevCR
		if i > 0 {
			cr = p[i-1] == '\r'
		}
		if cr {
			d.w.Write(p[:i+1])
		} else {
			d.w.Write(p[:i])
			d.w.WriteString("\r\n")
		}
		d.midLine, d.prevCR = false, false
		p = p[i+1:]
	}
	// Both sinks keep their first error: report it.
	if _, err := d.w.Write(nil); err != nil {
		return 0, err
	}
	return n, nil
}

// finish ends the last line (and gives empty content its one empty line,
// as textproto does).
func (d *dotWriter) finish() error {
	if d.midLine || d.empty {
		if d.prevCR {
			d.w.WriteByte('\n')
		} else {
			d.w.WriteString("\r\n")
		}
	}
	_, err := d.w.Write(nil)
	return err
}

// Fingerprint is a pinned next-hop key: the SHA-256 of the certificate's
// SubjectPublicKeyInfo (as DANE's "3 1 1"), so that it survives a renewal
// with the same key (config.ParseFingerprint reads relay.next_hop_fingerprint).
type Fingerprint [sha256.Size]byte

func (f Fingerprint) String() string { return "sha256:" + hex.EncodeToString(f[:]) }

// errPin is a next hop whose key is not the pinned one.
var errPin = errors.New("next hop certificate does not match the pinned fingerprint")

// pinned is a TLS config that accepts exactly the pinned key (and no CA).
func pinned(base *tls.Config, pin Fingerprint) *tls.Config {
	cfg := base.Clone()
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection's pin check
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errPin
		}
		got := Fingerprint(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
		if subtle.ConstantTimeCompare(got[:], pin[:]) != 1 {
			return fmt.Errorf("%w: pinned %s, got %s", errPin, pin, got)
		}
		return nil
	}
	return cfg
}
