package hold

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/gate"
)

// maxWarnsInFlight bounds the warn notices being claimed and sent at once;
// beyond it a notice is dropped (logged): a notice must never slow mail.
const maxWarnsInFlight = 16

// Warned implements gate.Warner: the sender of a message delivered to a
// recipient that looked like a typo (the warn action) gets a short notice
// with the suggestion, at most one per sender and recipient domain a day
// (a durable claim in the store, shared by every node). It returns at
// once; the claim and the sending happen in the background.
func (h *Holder) Warned(queueID, sender string, r gate.RcptResult) {
	if sender == "" || h.cfg.NotifySMTP == "" {
		return // a bounce, or nowhere to send from
	}
	select {
	case h.warns <- struct{}{}:
	default:
		h.log.Warn("too many warn notices in flight; one dropped", "queue_id", queueID)
		return
	}
	go func() {
		defer func() { <-h.warns }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.warnNotice(ctx, queueID, sender, r); err != nil {
			h.log.Error("warn notice", "queue_id", queueID, "err", err)
		}
	}()
}

func (h *Holder) warnNotice(ctx context.Context, queueID, sender string, r gate.RcptResult) error {
	domain := strings.ToLower(r.Recipient[strings.LastIndexByte(r.Recipient, '@')+1:])
	now := h.now()
	first, err := h.store.ClaimWarnNotice(ctx, strings.ToLower(sender), domain, now)
	if err != nil || !first {
		return err
	}
	if err := h.send(ctx, h.cfg.NotifySMTP, h.cfg.NotifyFrom, []string{sender}, h.warnMessage(sender, r)); err != nil {
		return fmt.Errorf("sending to %s: %w", sender, err)
	}
	h.log.Info("warn notice sent", "queue_id", queueID, "domain", domain)
	return nil
}

// warnMessage is the notice: what was sent where, what stray thinks was
// meant, and what to do.
func (h *Holder) warnMessage(sender string, r gate.RcptResult) []byte {
	f := r.Decision.Finding
	var b strings.Builder
	b.WriteString(header("From", "stray <"+h.cfg.NotifyFrom+">"))
	b.WriteString("To: <" + sender + ">\r\n")
	title := "Check the address: " + r.Recipient
	if f.Suggestion != "" {
		title += " - did you mean " + f.Suggestion + "?"
	}
	b.WriteString(header("Subject", title))
	b.WriteString("Date: " + h.now().Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: " + messageID(h.cfg.NotifyFrom) + "\r\n")
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "A message you sent has been delivered to %s.\r\n\r\n", r.Recipient)
	if f.Intended != "" {
		fmt.Fprintf(&b, "  %s looks like a typo of %s.\r\n  Did you mean %s?\r\n\r\n", domainOf(r.Recipient), f.Intended, f.Suggestion)
		fmt.Fprintf(&b, "If so, send it again to %s, and consider telling the people at\r\n%s that it reached them by mistake.\r\n", f.Suggestion, domainOf(r.Recipient))
	} else {
		fmt.Fprintf(&b, "  %s looks like a mistyped address.\r\n\r\nIf it is, send the message again to the right address.\r\n", r.Recipient)
	}
	b.WriteString("You are told at most once a day about each such domain.\r\n")
	b.WriteString("\r\n-- \r\nstray, which checks outgoing mail for mistyped addresses\r\n")
	return []byte(b.String())
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }
