package relay

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// smtpConn sits between a client's connection and go-smtp's server when
// the relay offers DSN. It exists for one parameter: Postfix (3.7, at
// least) sends an internationalised recipient's original address as
// ORCPT=rfc822;j+C3+B6rg@b+C3+BCcher.de, xtext of UTF-8 octets under the
// rfc822 type, and go-smtp v0.25.1 answers that with a permanent 501
// (its xtext decoder takes only ASCII, and rfc822 must be ASCII). RFC 6533
// gives such an address its own type, utf-8; smtpConn rewrites just that
// parameter of RCPT commands into ORCPT=utf-8;j\x{F6}rg@b\x{FC}cher.de,
// which go-smtp decodes to the same address (fixORCPT says exactly when).
// It also answers a MAIL whose ENVID go-smtp would refuse with a 501
// that says why (envidProblem).
//
// Because the rewrite must see commands inside TLS too, smtpConn also does
// STARTTLS itself (go-smtp would put its TLS layer below this one): it
// adds STARTTLS to the EHLO reply, answers the command, discards whatever
// the client sent after it in clear, and then lets only EHLO, HELO, NOOP,
// RSET and QUIT through until the client says EHLO again (go-smtp then
// resets the session, as RFC 3207 asks). Message content is never looked
// at: after a 354 reply it passes everything up to and including the end
// marker go-smtp itself looks for, and BDAT chunks by their size, exactly
// when go-smtp reads them.
type smtpConn struct {
	net.Conn // the client's TCP connection (addresses, deadlines)

	tlsCfg      *tls.Config // nil: no STARTTLS
	log         *slog.Logger
	readTimeout time.Duration // go-smtp's, for the first command inside TLS

	r       *bufio.Reader // the current transport: Conn, then TLS
	tls     atomic.Pointer[tls.Conn]
	pend    []byte // the rest of a line the caller had no room for
	mode    int
	chunk   uint64 // BDAT bytes left
	dataSt  int    // the end-of-data state machine
	sawData bool   // the last command passed was DATA
	long    bool   // inside an over-long line: passed as it is
	hello   bool   // after STARTTLS: EHLO needed before anything else

	wmu       sync.Mutex // guards w, the fields below and writes
	w         net.Conn   // where replies go: Conn, then TLS
	lastCode  [3]byte    // of the last reply line written
	wLineFrom bool       // the next write starts a line
	inject    bool       // add STARTTLS to the EHLO reply being written
}

const (
	modeCmd = iota
	modeData
	modeChunk
)

// maxCmdLine bounds a command line looked at; longer lines pass as they
// are (go-smtp refuses them at 2000).
const maxCmdLine = 4096

func newSMTPConn(c net.Conn, tlsCfg *tls.Config, log *slog.Logger, readTimeout time.Duration) *smtpConn {
	return &smtpConn{Conn: c, tlsCfg: tlsCfg, log: log, readTimeout: readTimeout, r: bufio.NewReaderSize(c, maxCmdLine), w: c, wLineFrom: true}
}

// TLSConnectionState is the client's TLS state after STARTTLS.
func (c *smtpConn) TLSConnectionState() (tls.ConnectionState, bool) {
	if t := c.tls.Load(); t != nil {
		return t.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

func (c *smtpConn) Close() error {
	if t := c.tls.Load(); t != nil {
		return t.Close()
	}
	return c.Conn.Close()
}

// Write passes go-smtp's replies on, noting the last reply code and adding
// STARTTLS to an EHLO reply. go-smtp writes whole lines.
func (c *smtpConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := b
	if c.inject && c.wLineFrom {
		c.inject = false
		if i := bytes.Index(b, []byte("\r\n")); i >= 4 && string(b[:3]) == "250" {
			var nb []byte
			switch b[3] {
			case '-':
				nb = append(append(append(nb, b[:i+2]...), "250-STARTTLS\r\n"...), b[i+2:]...)
			case ' ':
				nb = append(append(append(append(nb, "250-"...), b[4:i+2]...), "250 STARTTLS\r\n"...), b[i+2:]...)
			}
			if nb != nil {
				out = nb
			}
		}
	}
	if len(b) > 0 {
		start := 0
		if !c.wLineFrom {
			start = -1
		}
		body := b
		if bytes.HasSuffix(body, []byte("\r\n")) {
			body = body[:len(body)-2]
		}
		if i := bytes.LastIndex(body, []byte("\r\n")); i >= 0 {
			start = i + 2
		}
		if start >= 0 && len(b)-start >= 3 {
			copy(c.lastCode[:], b[start:start+3])
		}
		c.wLineFrom = bytes.HasSuffix(b, []byte("\r\n"))
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// reply writes a reply of smtpConn's own (to STARTTLS, or to a command
// before EHLO after STARTTLS).
func (c *smtpConn) reply(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(time.Minute))
	_, err := c.w.Write([]byte(s + "\r\n"))
	return err
}

func (c *smtpConn) replied(code string) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return string(c.lastCode[:]) == code
}

func (c *smtpConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.pend) > 0 {
		n := copy(p, c.pend)
		c.pend = c.pend[n:]
		return n, nil
	}
	for {
		switch c.mode {
		case modeChunk:
			if uint64(len(p)) > c.chunk {
				p = p[:c.chunk]
			}
			n, err := c.r.Read(p)
			c.chunk -= uint64(n)
			if c.chunk == 0 {
				c.mode = modeCmd
			}
			return n, err
		case modeData:
			return c.readData(p)
		}
		if c.sawData {
			c.sawData = false
			if c.replied("354") {
				c.mode, c.dataSt = modeData, 0
				continue
			}
		}
		line, err := c.r.ReadSlice('\n')
		if len(line) == 0 {
			return 0, err
		}
		if c.long || !bytes.HasSuffix(line, []byte("\n")) {
			// An over-long line (go-smtp refuses it), or a part before a
			// read error: passed as it is, and so is its continuation.
			c.long = !bytes.HasSuffix(line, []byte("\n"))
			return c.give(p, line), nil
		}
		out, again, cerr := c.command(line)
		if cerr != nil {
			return 0, cerr
		}
		if again {
			continue
		}
		return c.give(p, out), nil
	}
}

// give copies b to p and keeps what does not fit for the next Read.
func (c *smtpConn) give(p, b []byte) int {
	n := copy(p, b)
	if n < len(b) {
		c.pend = append(c.pend[:0], b[n:]...)
	}
	return n
}

// command looks at one command line: what to pass to go-smtp, or again
// when smtpConn answered it itself.
func (c *smtpConn) command(line []byte) (out []byte, again bool, err error) {
	verb := line
	if i := bytes.IndexAny(verb, " \r\n"); i >= 0 {
		verb = verb[:i]
	}
	v := strings.ToUpper(string(verb))
	if c.hello {
		switch v {
		case "EHLO", "HELO":
			c.hello = false
		case "NOOP", "RSET", "QUIT":
		default:
			return nil, true, c.reply("503 5.5.1 Send EHLO first after STARTTLS")
		}
	}
	switch v {
	case "STARTTLS":
		if c.tlsCfg != nil && c.tls.Load() == nil && len(bytes.TrimSpace(line)) == len("STARTTLS") {
			return nil, true, c.startTLS()
		}
	case "EHLO":
		if c.tlsCfg != nil && c.tls.Load() == nil {
			c.wmu.Lock()
			c.inject = true
			c.wmu.Unlock()
		}
	case "DATA":
		c.sawData = true
	case "BDAT":
		// Exactly when go-smtp reads the chunk that follows: one or two
		// arguments, the second LAST, the size a 32-bit number.
		args := strings.Fields(string(line[4:]))
		if len(args) == 1 || len(args) == 2 && strings.EqualFold(args[1], "LAST") {
			if n, err := strconv.ParseUint(args[0], 10, 32); err == nil && n > 0 {
				c.mode, c.chunk = modeChunk, n
			}
		}
	case "MAIL":
		if why := envidProblem(line); why != "" {
			c.log.Info("MAIL refused: malformed ENVID", "reason", why)
			return nil, true, c.reply("501 5.5.4 Malformed ENVID parameter: " + why)
		}
	case "RCPT":
		if fixed, ok := fixORCPT(line); ok {
			c.log.Debug("ORCPT with a UTF-8 address given its RFC 6533 type", "from", string(bytes.TrimSpace(line)), "to", string(bytes.TrimSpace(fixed)))
			return fixed, false, nil
		}
	}
	return line, false, nil
}

// envidProblem says why go-smtp would refuse the ENVID parameter of a MAIL
// command, in words for the client: its value must be xtext (RFC 3461:
// "+" and two upper-case hex digits for "+", "=" and what is not
// printable) of printable ASCII, which RFC 6533 leaves as it is under
// SMTPUTF8 (it has a UTF-8 form for ORCPT only). go-smtp refuses those
// with a 501 that does not say why, or, for a bare "=", does not name
// ENVID. It is "" when go-smtp takes the parameter, and whenever it is
// unsure that it reads the command as go-smtp does (no ">", not exactly
// one ENVID after the line's last ">"): only what go-smtp refuses is ever
// refused here.
func envidProblem(line []byte) string {
	gt := bytes.LastIndexByte(line, '>')
	if gt < 0 || !hasENVID(line[gt+1:]) {
		return "" // most MAIL commands: nothing allocated
	}
	var value string
	n := 0
	for _, f := range strings.Fields(string(line[gt+1:])) {
		k, v, _ := strings.Cut(f, "=")
		if strings.ToUpper(k) == "ENVID" { // as go-smtp reads keywords
			value = v
			n++
		}
	}
	if n != 1 {
		return ""
	}
	if value == "" {
		return "empty"
	}
	if strings.Contains(value, "=") {
		return `a bare "=" (xtext writes it +3D)`
	}
	for i := 0; i < len(value); i++ {
		ch := value[i]
		if ch == '+' {
			if i+2 >= len(value) || !isUpperHex(value[i+1]) || !isUpperHex(value[i+2]) {
				return `"+" without two upper-case hex digits (xtext)`
			}
			ch = unhex(value[i+1])<<4 | unhex(value[i+2])
			i += 2
		}
		if ch < ' ' || ch > '~' {
			return "printable ASCII only (RFC 3461), also with SMTPUTF8"
		}
	}
	return ""
}

// hasENVID reports whether b holds "ENVID" in any ASCII case.
func hasENVID(b []byte) bool {
	for i := 0; i+5 <= len(b); i++ {
		if b[i]|0x20 == 'e' && b[i+1]|0x20 == 'n' && b[i+2]|0x20 == 'v' && b[i+3]|0x20 == 'i' && b[i+4]|0x20 == 'd' {
			return true
		}
	}
	return false
}

func unhex(b byte) byte {
	if b <= '9' {
		return b - '0'
	}
	return b - 'A' + 10
}

// startTLS answers STARTTLS and makes the rest of the session TLS.
func (c *smtpConn) startTLS() error {
	if n := c.r.Buffered(); n > 0 {
		// Sent in clear after STARTTLS: never read as commands inside TLS
		// (CVE-2011-0411).
		c.log.Warn("client sent commands after STARTTLS before TLS; discarded", "bytes", n)
		c.r.Discard(n)
	}
	if err := c.reply("220 2.0.0 Ready to start TLS"); err != nil {
		return err
	}
	c.Conn.SetDeadline(time.Now().Add(time.Minute))
	t := tls.Server(c.Conn, c.tlsCfg)
	if err := t.Handshake(); err != nil {
		c.log.Info("TLS handshake with the client failed", "err", err)
		return err
	}
	c.Conn.SetWriteDeadline(time.Time{})
	c.Conn.SetReadDeadline(time.Now().Add(c.readTimeout))
	c.wmu.Lock()
	c.w = t
	c.wLineFrom = true
	c.wmu.Unlock()
	c.tls.Store(t)
	c.r = bufio.NewReaderSize(t, maxCmdLine)
	c.hello = true
	return nil
}

// readData passes message content up to and including the end marker,
// found exactly as go-smtp finds it (CR LF "." CR LF; the content starts
// at the beginning of a line).
func (c *smtpConn) readData(p []byte) (int, error) {
	if c.r.Buffered() == 0 {
		if _, err := c.r.Peek(1); err != nil {
			return 0, err
		}
	}
	b, _ := c.r.Peek(min(len(p), c.r.Buffered()))
	const (
		begin = iota // beginning of a line (the initial state)
		dot          // "." at the beginning of a line
		dotCR        // ".\r"
		cr           // "\r"
		mid          // in a line
	)
	st, end := c.dataSt, -1
	for i := 0; i < len(b) && end < 0; i++ {
		if st == mid {
			// Inside a line only a CR matters: skip to it.
			j := bytes.IndexByte(b[i:], '\r')
			if j < 0 {
				break
			}
			i += j
		}
		ch := b[i]
		switch st {
		case begin:
			switch ch {
			case '.':
				st = dot
			case '\r':
				st = cr
			default:
				st = mid
			}
		case dot:
			if ch == '\r' {
				st = dotCR
			} else {
				st = mid
			}
		case dotCR:
			if ch == '\n' {
				end = i + 1
			} else {
				st = mid
			}
		case cr:
			if ch == '\n' {
				st = begin
			} else {
				st = mid
			}
		case mid: // ch is '\r'
			st = cr
		}
	}
	n := len(b)
	if end >= 0 {
		n, c.mode = end, modeCmd
	}
	c.dataSt = st
	copy(p, b[:n])
	c.r.Discard(n)
	return n, nil
}

// fixORCPT rewrites a RCPT command's ORCPT=rfc822;XTEXT parameter whose
// value decodes (RFC 3461 xtext) to a UTF-8 address with non-ASCII
// characters into ORCPT=utf-8;UTF8-ADDR-XTEXT (RFC 6533), the form go-smtp
// reads, for the same address. It changes nothing else and nothing when
// unsure: the recipient path is left untouched (only what follows the
// line's last ">" is looked at), and a value that is not strict xtext,
// not valid UTF-8, all ASCII, holds a control character, or is one of two
// ORCPT parameters stays as it was (and gets go-smtp's 501, as before).
func fixORCPT(line []byte) ([]byte, bool) {
	if len(line) < 8 || !strings.EqualFold(string(line[:8]), "RCPT TO:") {
		return nil, false
	}
	gt := bytes.LastIndexByte(line, '>')
	if gt < 0 {
		return nil, false
	}
	params := string(line[gt+1:])
	eol := ""
	if strings.HasSuffix(params, "\r\n") {
		params, eol = params[:len(params)-2], "\r\n"
	} else if strings.HasSuffix(params, "\n") {
		params, eol = params[:len(params)-1], "\n"
	}
	fields := strings.Split(params, " ")
	at := -1
	for i, f := range fields {
		if len(f) >= 6 && strings.EqualFold(f[:6], "ORCPT=") {
			if at >= 0 {
				return nil, false
			}
			at = i
		}
	}
	if at < 0 {
		return nil, false
	}
	typ, val, ok := strings.Cut(fields[at][6:], ";")
	if !ok || !strings.EqualFold(typ, "rfc822") {
		return nil, false
	}
	addr, ok := decodeXtext(val)
	if !ok || !utf8.ValidString(addr) || isASCII(addr) {
		return nil, false
	}
	for _, r := range addr {
		if r < 0x20 || r == 0x7f {
			return nil, false
		}
	}
	fields[at] = "ORCPT=utf-8;" + encodeUTF8AddrXtext(addr)
	out := make([]byte, 0, len(line)+16)
	out = append(out, line[:gt+1]...)
	out = append(out, strings.Join(fields, " ")...)
	return append(out, eol...), true
}

// decodeXtext decodes RFC 3461 xtext strictly: characters "!" to "~"
// except "+" and "=", and "+" with two upper-case hex digits.
func decodeXtext(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", false
			}
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		case ch >= '!' && ch <= '~' && ch != '=':
			b.WriteByte(ch)
		default:
			return "", false
		}
	}
	return b.String(), b.Len() > 0
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// encodeUTF8AddrXtext is RFC 6533's utf-8-addr-xtext of s (no control
// characters): printable ASCII but "+", "=" and "\" as is, everything else
// as \x{HEX} with the fewest upper-case digits (at least two).
func encodeUTF8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > ' ' && r < 0x7f && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		h := strings.ToUpper(strconv.FormatUint(uint64(r), 16))
		if len(h) < 2 {
			h = "0" + h
		}
		b.WriteString(`\x{` + h + `}`)
	}
	return b.String()
}
