package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
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
	// release holds the values of the release header fields, in order.
	release []string
}

func newContentBuf(max int) *contentBuf { return &contentBuf{max: max} }

// Header changes, used only for messages that carry a release header
// (re-injections): the release header is removed before the message
// leaves.
const (
	respChgHeader = 'm'  // SMFIR_CHGHEADER
	actChgHeaders = 0x10 // SMFIF_CHGHDRS
)

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
	if strings.EqualFold(name, gate.ReleaseHeader) && len(c.release) < 4 {
		c.release = append(c.release, strings.TrimSpace(value))
	}
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
// (header removals, recipient removals, quarantine), the final reply code,
// and what to do once that reply is sent (nil: nothing).
func (c *conn) endOfMessage(end gate.End, content *contentBuf, queueID, sender string) ([]Packet, byte, func()) {
	h := c.srv.Holder
	var out []Packet
	var after func()
	if h != nil && content != nil && len(content.release) > 0 {
		// A message carrying release headers: stray's own re-injection
		// (remove the header, record the delivery once the MTA has it), a
		// second copy of one already delivered (drop it), or neither.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, v := range content.release {
			id, kind := h.CheckReinjection(ctx, v)
			switch kind {
			case hold.Duplicate:
				c.log.Warn("dropped a second copy of a released message", "queue_id", queueID, "id", id)
				return nil, respDiscard, nil
			case hold.Reinjecting:
				if after == nil {
					after = func() { h.Reinjected(context.Background(), id) }
				}
			}
			// The header is stray's business, not the recipient's: every
			// copy of it goes (removing index 1 each time).
			if c.actions&actChgHeaders != 0 {
				out = append(out, Packet{Code: respChgHeader, Data: chgHeader(1, gate.ReleaseHeader, "")})
			}
		}
		if after != nil {
			// As if the MTA hung after DATA and the node was killed: the
			// MTA tempfails the copy, the message stays releasing.
			crashPoint("release-before-accept")
		}
	}
	if end.Hold == "" {
		return out, respContinue, after
	}
	quarantine := append(out, Packet{Code: respQuarantine, Data: nul(end.Hold)})
	if h == nil {
		return quarantine, respContinue, after
	}
	if content == nil || content.tooBig {
		c.log.Warn("message too large to hold in the store; quarantined in the MTA instead", "queue_id", queueID)
		return quarantine, respContinue, after
	}
	req := hold.NewRequest(queueID, sender, content.buf.Bytes(), end.HeldRecipients)
	ctx, cancel := context.WithTimeout(c.srv.ctx, 20*time.Second)
	defer cancel()
	crashPoint("before-hold")
	held, err := h.HoldMessage(ctx, req)
	crashPoint("after-hold")
	if err != nil {
		c.log.Error("cannot store the held message", "queue_id", queueID, "err", err)
		if c.srv.OnStoreError == config.StoreErrorQuarantine {
			return quarantine, respContinue, after
		}
		// Never accept what cannot be stored: the MTA keeps the message
		// and its client retries.
		return nil, respTempfail, nil
	}
	id := held.ID
	c.log.Info("held", "queue_id", queueID, "id", id, "held", len(req.Held), "all_held", end.AllHeld, "retry", held.Retry, "waiting", held.Waiting)
	if held.Waiting {
		c.srv.background(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			// The MTA has its answer by now (or is about to): a crash here
			// leaves a held, unnotified message, which the sweep notifies.
			t := time.NewTimer(10 * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return // stopping: the sweep notifies it
			}
			crashPoint("before-notify")
			if err := h.Notify(ctx, id); err != nil {
				c.log.Error("notification failed; it will be retried", "id", id, "err", err)
			}
		})
	}
	if end.AllHeld {
		// Every recipient is held: the MTA delivers nothing now.
		return nil, respDiscard, nil
	}
	for _, r := range end.HeldRecipients {
		out = append(out, Packet{Code: respDelRcpt, Data: nul("<" + r.Recipient + ">")})
	}
	return out, respContinue, after
}

// chgHeader is the data of a header change: the index-th field called
// name (1-based) gets value; an empty value removes it.
func chgHeader(index uint32, name, value string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, index), nul(name, value)...)
}
