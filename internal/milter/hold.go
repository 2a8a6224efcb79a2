package milter

import (
	"bytes"
	"context"
	"time"

	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/store"
)

func (s *Server) maxHoldSize() int {
	if s.MaxHoldSize > 0 {
		return s.MaxHoldSize
	}
	return 64 << 20
}

// contentBuf collects a message's header and body as the MTA streams them,
// in wire form (CRLF), up to a bound. A nil contentBuf ignores everything.
type contentBuf struct {
	buf     bytes.Buffer
	max     int
	tooBig  bool
	inBody  bool
	sawHead bool
}

func newContentBuf(max int) *contentBuf { return &contentBuf{max: max} }

func (c *contentBuf) write(b []byte) {
	if c.tooBig {
		return
	}
	if c.buf.Len()+len(b) > c.max {
		c.tooBig = true
		c.buf = bytes.Buffer{}
		return
	}
	c.buf.Write(b)
}

func (c *contentBuf) header(name, value string) {
	if c == nil {
		return
	}
	c.sawHead = true
	// Folded values come with bare LF; the wire form is CRLF.
	v := bytes.ReplaceAll([]byte(value), []byte("\r\n"), []byte("\n"))
	v = bytes.ReplaceAll(v, []byte("\n"), []byte("\r\n"))
	c.write([]byte(name + ": "))
	c.write(v)
	c.write([]byte("\r\n"))
}

func (c *contentBuf) endHeaders() {
	if c == nil || c.inBody {
		return
	}
	c.inBody = true
	c.write([]byte("\r\n"))
}

func (c *contentBuf) body(b []byte) {
	if c == nil {
		return
	}
	c.endHeaders()
	c.write(b)
}

// endOfMessage decides the replies at end of message: the packets to send
// (recipient removals, quarantine) and the final reply code.
func (c *conn) endOfMessage(end gate.End, content *contentBuf, queueID, sender string) ([]Packet, byte) {
	if end.Hold == "" {
		return nil, respContinue
	}
	quarantine := []Packet{{Code: respQuarantine, Data: nul(end.Hold)}}
	h := c.srv.Holder
	if h == nil {
		return quarantine, respContinue
	}
	if content == nil || content.tooBig {
		c.log.Warn("message too large to hold in the store; quarantined in the MTA instead", "queue_id", queueID)
		return quarantine, respContinue
	}
	req := hold.Request{QueueID: queueID, Sender: sender, Raw: content.buf.Bytes()}
	for _, r := range end.HeldRecipients {
		f := r.Decision.Finding
		rec := store.Recipient{Address: r.Recipient, Verdict: f.Verdict.String(), Intended: f.Intended, Suggestion: f.Suggestion, Score: f.Score}
		for _, x := range f.Reasons {
			rec.Reasons = append(rec.Reasons, x.Kind+": "+x.Message)
		}
		req.Held = append(req.Held, rec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	crashPoint("before-hold")
	id, err := h.Hold(ctx, req)
	crashPoint("after-hold")
	if err != nil {
		c.log.Error("cannot store the held message", "queue_id", queueID, "err", err)
		if c.srv.OnStoreError == "quarantine" {
			return quarantine, respContinue
		}
		// Never accept what cannot be stored: the MTA keeps the message
		// and its client retries.
		return nil, respTempfail
	}
	c.log.Info("held", "queue_id", queueID, "id", id, "held", len(req.Held), "all_held", end.AllHeld)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The MTA has its answer by now (or is about to): a crash here
		// leaves a held, unnotified message, which the sweep notifies.
		time.Sleep(10 * time.Millisecond)
		crashPoint("before-notify")
		if err := h.Notify(ctx, id); err != nil {
			c.log.Error("notification failed; it will be retried", "id", id, "err", err)
		}
	}()
	if end.AllHeld {
		// Every recipient is held: the MTA delivers nothing now.
		return nil, respDiscard
	}
	var out []Packet
	for _, r := range end.HeldRecipients {
		out = append(out, Packet{Code: respDelRcpt, Data: nul("<" + r.Recipient + ">")})
	}
	return out, respContinue
}
