package hold

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/store"
)

// SendMail delivers msg over SMTP to server (host:port), with SMTPUTF8 when
// an address needs it. It is the default Mailer.
func SendMail(ctx context.Context, server, from string, to []string, msg []byte) error {
	d := net.Dialer{Timeout: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	} else {
		nc.SetDeadline(time.Now().Add(5 * time.Minute))
	}
	// A context that ends early (shutdown) ends the conversation too.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	c := smtp.NewClient(nc)
	defer c.Close()
	if err := c.Hello("stray.localdomain"); err != nil {
		return err
	}
	utf8 := !isASCII(from)
	for _, t := range to {
		utf8 = utf8 || !isASCII(t)
	}
	if err := c.Mail(from, &smtp.MailOptions{UTF8: utf8, EnvelopeID: envelopeID(ctx)}); err != nil {
		return err
	}
	for _, t := range to {
		if err := c.Rcpt(t, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// subject returns the held message's subject, decoded.
func subject(raw []byte) string {
	s := headerSubject(raw)
	if r := []rune(s); len(r) > 120 {
		s = string(r[:120]) + "..."
	}
	return s
}

// headerSubject is the message's Subject header, decoded ("" when the
// header cannot be read).
func headerSubject(raw []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	s := m.Header.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return s
}

// otherVisibleRecipients are the To and Cc addresses of the held message
// that were not held. When every recipient was held there are none, and
// the notification must not suggest that anyone received it (Bcc
// recipients are not in the header and are not named; whether the others
// were delivered is the MTA's business, so it is not claimed).
func otherVisibleRecipients(m *store.Message) []string {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return nil
	}
	held := map[string]bool{}
	for _, r := range m.Recipients {
		held[strings.ToLower(r.Address)] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, field := range []string{"To", "Cc"} {
		list, err := msg.Header.AddressList(field)
		if err != nil {
			continue
		}
		for _, a := range list {
			k := strings.ToLower(a.Address)
			if held[k] || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, a.Address)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return out
}

func header(name, value string) string {
	return name + ": " + mime.QEncoding.Encode("utf-8", value) + "\r\n"
}

func messageID(from string) string {
	b := make([]byte, 12)
	rand.Read(b)
	dom := "stray.localdomain"
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		dom = from[i+1:]
	}
	return "<" + hex.EncodeToString(b) + "@" + dom + ">"
}

// notification is the message telling the sender what was held and how to
// answer.
func (h *Holder) notification(m *store.Message) []byte {
	exp := m.ExpiresAt
	var held, suggested []string
	var why strings.Builder
	for _, r := range m.Recipients {
		held = append(held, r.Address)
		if r.Suggestion != "" {
			suggested = append(suggested, r.Suggestion)
			fmt.Fprintf(&why, "  %s looks like a typo of %s.\r\n  Did you mean %s?\r\n\r\n", r.Address, r.Intended, r.Suggestion)
		} else {
			fmt.Fprintf(&why, "  %s looks like a mistyped address.\r\n\r\n", r.Address)
		}
	}
	subj := subject(m.Raw)
	var b strings.Builder
	b.WriteString(header("From", "stray <"+h.cfg.NotifyFrom+">"))
	b.WriteString("To: <" + m.Sender + ">\r\n")
	title := "Held: your message to " + strings.Join(held, ", ")
	if len(suggested) > 0 {
		title += " - did you mean " + strings.Join(suggested, ", ") + "?"
	}
	b.WriteString(header("Subject", title))
	b.WriteString("Date: " + h.now().Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: " + messageID(h.cfg.NotifyFrom) + "\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\n")
	if h.cfg.ReplyDomain != "" {
		b.WriteString("Reply-To: <" + h.signer.ReplyAddress(m.ID, exp, h.cfg.ReplyDomain) + ">\r\n")
	}
	b.WriteString("X-Stray-Held: " + m.ID + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	if subj != "" {
		fmt.Fprintf(&b, "Your message \"%s\" has not been sent to:\r\n\r\n", subj)
	} else {
		b.WriteString("Your message has not been sent to:\r\n\r\n")
	}
	b.WriteString(why.String())
	if len(suggested) > 0 {
		fmt.Fprintf(&b, "Send it to %s instead:\r\n  %s\r\n\r\n", strings.Join(suggested, ", "), h.Link(m.ID, ActionFix, exp))
	}
	fmt.Fprintf(&b, "Send it to %s anyway:\r\n  %s\r\n\r\n", strings.Join(held, ", "), h.Link(m.ID, ActionRelease, exp))
	fmt.Fprintf(&b, "Cancel it:\r\n  %s\r\n\r\n", h.Link(m.ID, ActionCancel, exp))
	if h.cfg.ReplyDomain != "" {
		b.WriteString("Or reply to this message with SEND, FIX (send to the suggested address)\r\nor CANCEL as its first word.\r\n\r\n")
	}
	if others := otherVisibleRecipients(m); len(others) > 0 {
		fmt.Fprintf(&b, "Its other recipients (%s) were not held by this check.\r\n", strings.Join(others, ", "))
	}
	fmt.Fprintf(&b, "If you do nothing, it will be %s on %s.\r\n", map[bool]string{true: "sent anyway", false: "discarded"}[h.cfg.OnExpiry == config.ExpiryRelease], exp.UTC().Format("Mon 2 Jan 2006 15:04 MST"))
	b.WriteString("\r\n-- \r\nstray, which checks outgoing mail for mistyped addresses\r\n")
	return []byte(b.String())
}

// expiryNotice tells the sender a held message was discarded unanswered.
func (h *Holder) expiryNotice(m *store.Message) []byte {
	var held []string
	for _, r := range m.Recipients {
		held = append(held, r.Address)
	}
	var b strings.Builder
	b.WriteString(header("From", "stray <"+h.cfg.NotifyFrom+">"))
	b.WriteString("To: <" + m.Sender + ">\r\n")
	b.WriteString(header("Subject", "Not delivered: your message to "+strings.Join(held, ", ")))
	b.WriteString("Date: " + h.now().Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: " + messageID(h.cfg.NotifyFrom) + "\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "Your message \"%s\" to %s was held because the address looked mistyped,\r\nand nobody confirmed it in time. It has been discarded; please check the\r\naddress and send it again.\r\n", subject(m.Raw), strings.Join(held, ", "))
	return []byte(b.String())
}
