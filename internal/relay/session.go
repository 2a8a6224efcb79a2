package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/policy"
)

// session is one client session and its session to the next hop.
type session struct {
	s   *Server
	c   *smtp.Conn
	id  uint64
	log *slog.Logger
	gs  *gate.Session

	access  *access // who may relay, as when the session started
	inRange bool    // the client is in its ranges; else it needs an allowed certificate
	certOK  bool    // its certificate was checked and allowed (this TLS session)

	next *nextConn // nil until the first MAIL, and after a failure
	// kept: next came from the idle pool and has not answered yet in this
	// session; if it turns out dead, a fresh one replaces it unnoticed.
	kept    bool
	inTxn   bool // the next hop accepted MAIL
	from    string
	mail    *smtp.MailOptions
	mailErr *smtp.SMTPError // the next hop refused MAIL: every RCPT hears it
	sent    []string        // recipients the next hop accepted
	held    bool            // some recipient is held
}

// Errors the relay answers on its own.
var (
	errNextHopDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "next hop unavailable; try again later"}
	errNextHopLost = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "connection to the next hop lost; try again later"}
	errTLSRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "must issue a STARTTLS command first"}
	errStore       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot store the message for confirmation; try again later"}
	errTooBigHold  = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message too large to hold for confirmation"}
)

// nextErr is the answer for an error from the next hop: its own reply
// verbatim, or a temporary failure when the connection failed.
func (x *session) nextErr(what string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		x.log.Info("next hop refused", "cmd", what, "code", se.Code, "reply", se.Message)
		if se.Code == 421 {
			x.dropNext() // the next hop closes the session
		}
		return se
	}
	x.log.Warn("next hop failed", "cmd", what, "err", err)
	x.dropNext()
	return errNextHopLost
}

// dropNext closes the connection to the next hop without ending what is in
// progress: an unfinished DATA is then discarded by the next hop.
func (x *session) dropNext() {
	if x.next != nil {
		x.next.close()
		x.next = nil
	}
	x.inTxn, x.kept = false, false
}

func (x *session) dial() error {
	c, err := x.s.dialer.connect(x.s.ctx)
	if err != nil {
		var de *dialError
		if errors.As(err, &de) && errors.Is(err, errPin) {
			x.log.Warn("next hop certificate does not match the pinned fingerprint; refused", "next_hop", x.s.NextHop, "err", de.err)
		} else if de != nil {
			x.log.Warn(de.what, "next_hop", x.s.NextHop, "err", de.err)
		} else {
			x.log.Warn("cannot reach the next hop", "next_hop", x.s.NextHop, "err", err)
		}
		return errNextHopDown
	}
	x.next = c
	return nil
}

// Mail starts a transaction: the next hop is reached (a kept session or a
// new one; a failure is 451 here), and MAIL itself waits for the first
// recipient that passes, to go with its RCPT in one round trip.
func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := x.mayRelay(); err != nil {
		return err
	}
	if x.s.RequireTLS {
		if _, ok := x.tlsState(); !ok {
			return errTLSRequired
		}
	}
	x.resetTxn()
	x.gs.Mail(from)
	if x.next == nil {
		if x.next = x.s.takeNext(); x.next != nil {
			x.kept = true
		} else if err := x.dial(); err != nil {
			return err
		}
	}
	x.from, x.mail = from, passMail(opts)
	return nil
}

// toNext gives a recipient to the next hop, with MAIL before it when the
// transaction has not started there yet.
func (x *session) toNext(to string, opts *smtp.RcptOptions) error {
	if x.mailErr != nil {
		return x.mailErr
	}
	if x.next == nil {
		return errNextHopLost
	}
	for {
		mail := ""
		var err error
		if !x.inTxn {
			if mail, err = x.next.mailLine(x.from, x.mail); err != nil {
				x.log.Warn("cannot pass MAIL to the next hop", "err", err)
				return errNextHopLost
			}
		}
		rcpt, err := x.next.rcptLine(to, opts)
		if err != nil {
			x.log.Warn("cannot pass RCPT to the next hop", "err", err)
			return errNextHopLost
		}
		mailErr, rcptErr, err := x.next.mailRcpt(mail, rcpt)
		if err != nil && x.kept && !x.inTxn {
			// A kept session the next hop closed meanwhile: a fresh one.
			x.dropNext()
			if err := x.dial(); err != nil {
				return err
			}
			continue
		}
		x.kept = false
		if err != nil {
			return x.nextErr("RCPT", err)
		}
		if mailErr != nil {
			x.mailErr = mailErr
			return x.nextErr("MAIL", mailErr)
		}
		x.inTxn = true
		if rcptErr != nil {
			return x.nextErr("RCPT", rcptErr)
		}
		x.sent = append(x.sent, to)
		return nil
	}
}

// passMail is what the relay passes on of MAIL's parameters: SIZE, BODY,
// SMTPUTF8, REQUIRETLS and the DSN ones (RET, ENVID); AUTH= stays here.
func passMail(o *smtp.MailOptions) *smtp.MailOptions {
	if o == nil {
		return nil
	}
	return &smtp.MailOptions{Body: o.Body, Size: o.Size, RequireTLS: o.RequireTLS, UTF8: o.UTF8, Return: o.Return, EnvelopeID: o.EnvelopeID}
}

func (x *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	r := x.gs.Rcpt(to)
	if r.Reply != nil {
		return &smtp.SMTPError{Code: r.Reply.Code, EnhancedCode: enhanced(r.Reply.Enhanced), Message: r.Reply.Text}
	}
	if r.Decision.Action == policy.Hold {
		if x.s.Holder == nil {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: gate.Describe(r.Decision.Finding) + " (held mail needs a store: refused)"}
		}
		x.held = true
		return nil // accepted here; never given to the next hop
	}
	return x.toNext(to, passRcpt(opts))
}

// passRcpt passes DSN's NOTIFY and ORCPT on.
func passRcpt(o *smtp.RcptOptions) *smtp.RcptOptions {
	if o == nil {
		return nil
	}
	return &smtp.RcptOptions{Notify: o.Notify, OriginalRecipientType: o.OriginalRecipientType, OriginalRecipient: o.OriginalRecipient}
}

func enhanced(s string) smtp.EnhancedCode {
	var e smtp.EnhancedCode
	if _, err := fmt.Sscanf(s, "%d.%d.%d", &e[0], &e[1], &e[2]); err != nil {
		return smtp.EnhancedCodeNotSet
	}
	return e
}

func (x *session) Data(r io.Reader) error {
	br := x.s.readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		x.s.readers.Put(br)
	}()
	head, err := ReadHead(br, MaxHeaderBytes, strings.ToLower(gate.ReleaseHeader))
	if err != nil {
		return x.abort("reading the header", err)
	}
	if head.Hops >= x.s.MaxHops {
		x.log.Warn("too many hops; refused as a mail loop", "hops", head.Hops)
		x.gs.Reset()
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: fmt.Sprintf("too many hops (%d Received fields); mail loop?", head.Hops)}
	}
	for _, v := range head.Fields[strings.ToLower(gate.ReleaseHeader)] {
		x.gs.Header(gate.ReleaseHeader, v)
	}
	end := x.gs.End(x.s.ctx)
	// Recipients held at RCPT but released by a valid release header go to
	// the next hop after all.
	for _, rc := range end.Released {
		if err := x.toNext(rc, nil); err != nil {
			return err
		}
	}
	var prefix bytes.Buffer
	prefix.WriteString(x.received())
	for _, h := range end.Headers {
		prefix.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	prefix.Write(head.Raw)

	var keep *bytes.Buffer // the whole message, when something is held
	if end.Hold != "" {
		keep = &bytes.Buffer{}
		keep.Write(prefix.Bytes())
	}
	if len(x.sent) == 0 {
		// Everything accepted is held: the next hop gets nothing.
		if keep == nil {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}
		}
		if _, err := io.Copy(keep, io.LimitReader(br, int64(x.s.MaxHoldSize)+1)); err != nil {
			return x.abort("reading the message", err)
		}
		if keep.Len() > x.s.MaxHoldSize {
			return errTooBigHold
		}
		x.resetNext()
		id, err := x.hold(end, keep.Bytes())
		if err != nil {
			return err
		}
		x.notify(id)
		return nil
	}
	if x.next == nil {
		return errNextHopLost
	}
	w, err := x.next.data()
	if err != nil {
		return x.nextErr("DATA", err)
	}
	var dst io.Writer = w
	if keep != nil {
		dst = io.MultiWriter(w, &limitWriter{b: keep, max: x.s.MaxHoldSize})
	}
	if _, err := dst.Write(prefix.Bytes()); err != nil {
		return x.abort("writing to the next hop", err)
	}
	if _, err := io.Copy(dst, br); err != nil {
		return x.abort("streaming the message", err)
	}
	id := ""
	if keep != nil {
		if keep.Len() > x.s.MaxHoldSize {
			x.dropNext()
			return errTooBigHold
		}
		// The store commits before the next hop is told the message is
		// complete: if the store fails, the next hop never gets the end
		// of the message and the client retries the whole of it.
		if id, err = x.hold(end, keep.Bytes()); err != nil {
			x.dropNext()
			return err
		}
	}
	crashPoint("before-next-hop-end")
	err = x.next.end()
	x.inTxn = false
	if err != nil {
		if id != "" {
			// The client will retry (or bounce) the whole message: the
			// held copy must not wait for confirmation twice.
			if derr := x.s.Holder.Discard(context.Background(), id, "relay"); derr != nil {
				x.log.Error("cannot discard the held copy of a refused message", "id", id, "err", derr)
			}
		}
		return x.nextErr("end of DATA", err)
	}
	x.log.Info("relayed", "rcpts", len(x.sent), "held", len(end.HeldRecipients))
	if id != "" {
		x.notify(id)
	}
	return nil
}

// abort ends a message the relay could not finish: the next hop is
// disconnected mid-DATA (so it discards the message) and the client hears
// the reason (its own read error, e.g. too large, or a temporary failure).
func (x *session) abort(what string, err error) error {
	x.dropNext()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	x.log.Warn("message not relayed", "while", what, "err", err)
	return errNextHopLost
}

// hold stores a message with held recipients.
func (x *session) hold(end gate.End, raw []byte) (string, error) {
	sender := x.gs.Sender()
	if sender == "" {
		sender = strings.Trim(x.from, "<>")
	}
	req := hold.NewRequest(fmt.Sprintf("relay-%d-%d", x.id, time.Now().UnixNano()), sender, raw, end.HeldRecipients)
	ctx, cancel := context.WithTimeout(x.s.ctx, 20*time.Second)
	defer cancel()
	id, err := x.s.Holder.Hold(ctx, req)
	if err != nil {
		x.log.Error("cannot store the held message", "err", err)
		return "", errStore
	}
	x.log.Info("held", "id", id, "held", len(req.Held))
	return id, nil
}

// notify tells the sender about a held message, in the background: a
// failure is retried by the holder's sweep.
func (x *session) notify(id string) {
	h, log := x.s.Holder, x.log
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Notify(ctx, id); err != nil {
			log.Error("notification failed; it will be retried", "id", id, "err", err)
		}
	}()
}

// received is the Received field the relay adds.
func (x *session) received() string {
	client := "unknown"
	if ta, ok := x.c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		client = ta.IP.String()
	}
	proto := "ESMTP"
	if _, ok := x.tlsState(); ok {
		proto = "ESMTPS"
	}
	return fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (stray relay) with %s id %x-%d;\r\n\t%s\r\n",
		sanitize(x.c.Hostname()), client, x.s.Domain, proto, x.id, time.Now().UnixNano()%1e6, time.Now().Format(time.RFC1123Z))
}

// sanitize keeps a client-supplied name safe inside a header field.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f && r != '(' && r != ')' && r != ';' {
			b.WriteRune(r)
		}
		if b.Len() >= 255 {
			break
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// resetNext abandons the transaction in progress at the next hop (the
// RSET goes with the next commands when the next hop pipelines).
func (x *session) resetNext() {
	if x.inTxn && x.next != nil {
		if err := x.next.rset(); err != nil {
			x.dropNext()
		}
	}
	x.inTxn = false
}

// resetTxn abandons the transaction in progress.
func (x *session) resetTxn() {
	x.resetNext()
	x.from, x.mail, x.mailErr, x.sent, x.held = "", nil, nil, x.sent[:0], false
}

func (x *session) Reset() {
	x.resetTxn()
	x.gs.Reset()
}

func (x *session) Logout() error {
	if x.next != nil {
		x.resetTxn()
		if x.next != nil {
			x.s.keepNext(x.next)
			x.next = nil
		}
	}
	return nil
}

// limitWriter writes into b up to max bytes and then one more, so that
// "too large" shows, and discards the rest.
type limitWriter struct {
	b   *bytes.Buffer
	max int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if room := l.max + 1 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// crashPoint kills the process with SIGKILL when STRAY_TEST_CRASH_AT names
// this point (as the milter's): the crash tests die at an exact moment.
func crashPoint(name string) {
	if v := os.Getenv("STRAY_TEST_CRASH_AT"); v != "" && v == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// hostname is the default name of the relay.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
