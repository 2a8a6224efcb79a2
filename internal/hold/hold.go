// Package hold is the hold-and-confirm workflow: a message with a likely
// typo among its recipients is stored durably, the sender gets a message
// with signed, expiring links (send anyway, cancel, send to the suggested
// address), and on their answer the message is re-injected to the held
// recipients — carrying a signed header the gate recognises, so it is not
// held again — or discarded. Nothing is ever lost: a message is held before
// the MTA is told it may drop those recipients, a release happens exactly
// once across nodes (store transitions), and expired holds are discarded or
// released and the sender told.
//
// It decides nothing about typos; the gate and policy decide what to hold.
package hold

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// Config is the hold section of the configuration, resolved.
type Config struct {
	Node     string        // this node's name, for the event log
	BaseURL  string        // where the link pages are served, e.g. https://stray.example.com
	Expire   time.Duration // how long a message waits for its sender
	OnExpiry string        // "discard" (default) or "release"
	// NotifySMTP is the submission server notifications go through
	// (host:port), NotifyFrom their sender address.
	NotifySMTP string
	NotifyFrom string
	// ReinjectSMTP is where released messages are delivered (host:port):
	// the MTA, whose gate recognises the release header.
	ReinjectSMTP string
	// ReplyDomain, when set, enables answering by reply: the MTA routes
	// this domain to stray's reply listener.
	ReplyDomain string
	// Sweep is how often expired holds, unfinished releases and missing
	// notifications are handled (default 1m).
	Sweep time.Duration
}

// Mailer sends one message over SMTP.
type Mailer func(ctx context.Context, server, from string, to []string, msg []byte) error

// Holder runs the workflow on a store.
type Holder struct {
	cfg    Config
	store  store.Store
	signer *Signer
	log    *slog.Logger
	send   Mailer
	now    func() time.Time
}

// New makes a Holder. send may be nil (SMTP via SendMail).
func New(cfg Config, st store.Store, signer *Signer, log *slog.Logger, send Mailer) *Holder {
	if cfg.Expire <= 0 {
		cfg.Expire = 72 * time.Hour
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = time.Minute
	}
	if send == nil {
		send = SendMail
	}
	return &Holder{cfg: cfg, store: st, signer: signer, log: log, send: send, now: time.Now}
}

// Store returns the Holder's store.
func (h *Holder) Store() store.Store { return h.store }

// Signer returns the Holder's signer.
func (h *Holder) Signer() *Signer { return h.signer }

// Request is a message to hold, as the front end received it.
type Request struct {
	QueueID string
	Sender  string
	Held    []store.Recipient
	// Raw is the whole message, headers and body, as received.
	Raw []byte
}

// messageID derives the held message's id from its content, keyed by the
// signing key: the same message retried by the MTA (after stray crashed
// between storing it and answering) maps to the same id and is held once.
// Fields the MTA writes anew on each attempt are left out: Received, and
// Message-ID and Date when the MTA made them up (its Message-ID carries
// this attempt's queue id).
func (h *Holder) messageID(r Request) string {
	m := hmac.New(sha256.New, h.signer.key)
	m.Write([]byte("id\x00" + r.Sender + "\x00"))
	rc := make([]string, len(r.Held))
	for i, x := range r.Held {
		rc[i] = strings.ToLower(x.Address)
	}
	sort.Strings(rc)
	m.Write([]byte(strings.Join(rc, ",") + "\x00"))
	m.Write(stableContent(r.Raw, r.QueueID))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// stableContent is raw without the header fields an MTA writes anew on
// each delivery attempt (with their continuation lines).
func stableContent(raw []byte, queueID string) []byte {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	fields := splitFields(raw[:end])
	mtaMade := false
	for _, f := range fields {
		if hasName(f, "message-id") && queueID != "" && bytes.Contains(f, []byte(queueID)) {
			mtaMade = true
		}
	}
	var out []byte
	for _, f := range fields {
		if hasName(f, "received") || (mtaMade && (hasName(f, "message-id") || hasName(f, "date"))) {
			continue
		}
		out = append(out, f...)
	}
	return append(out, raw[end:]...)
}

// splitFields splits a header block into fields, each with its
// continuation lines.
func splitFields(head []byte) [][]byte {
	var fields [][]byte
	for _, line := range bytes.SplitAfter(head, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		fields = append(fields, append([]byte(nil), line...))
	}
	return fields
}

func hasName(field []byte, name string) bool {
	return len(field) > len(name) && field[len(name)] == ':' && strings.EqualFold(string(field[:len(name)]), name)
}

// Hold stores the message durably and returns its id. When it returns nil
// the front end may drop the held recipients from this delivery. A message
// already held (a retry) returns the existing id.
func (h *Holder) Hold(ctx context.Context, r Request) (string, error) {
	id := h.messageID(r)
	if _, err := h.store.Get(ctx, id); err == nil {
		h.log.Info("message already held; a retried delivery", "id", id, "queue_id", r.QueueID)
		return id, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("hold: %w", err)
	}
	now := h.now()
	m := &store.Message{
		ID: id, QueueID: r.QueueID, Sender: r.Sender, Recipients: r.Held, Raw: r.Raw, Size: int64(len(r.Raw)),
		State: store.StateHeld, Node: h.cfg.Node, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(h.cfg.Expire),
	}
	rc := make([]string, len(r.Held))
	for i, x := range r.Held {
		rc[i] = x.Address
	}
	ev := store.Event{Time: now, MessageID: id, Kind: "held", Actor: "node:" + h.cfg.Node,
		Detail: fmt.Sprintf("queue_id=%s sender=%s rcpts=%s", r.QueueID, r.Sender, strings.Join(rc, ","))}
	if err := h.store.Hold(ctx, m, ev); err != nil {
		if errors.Is(err, store.ErrExists) {
			return id, nil // another node held the same retry first
		}
		return "", fmt.Errorf("hold: %w", err)
	}
	return id, nil
}

// Notify tells the sender that the message is held and how to answer.
func (h *Holder) Notify(ctx context.Context, id string) error {
	m, err := h.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("hold: notify %s: %w", id, err)
	}
	if m.Sender == "" {
		// The null sender (a bounce): nobody to ask.
		return h.store.AddEvent(ctx, store.Event{Time: h.now(), MessageID: id, Kind: "notify-skipped", Actor: "system", Detail: "null sender"})
	}
	msg := h.notification(m)
	if err := h.send(ctx, h.cfg.NotifySMTP, h.cfg.NotifyFrom, []string{m.Sender}, msg); err != nil {
		h.store.AddEvent(ctx, store.Event{Time: h.now(), MessageID: id, Kind: "notify-failed", Actor: "system", Detail: err.Error()})
		return fmt.Errorf("hold: notify %s: %w", id, err)
	}
	if err := h.store.MarkNotified(ctx, id, h.now()); err != nil {
		return err
	}
	return h.store.AddEvent(ctx, store.Event{Time: h.now(), MessageID: id, Kind: "notified", Actor: "system", Detail: "to " + m.Sender})
}

// Link returns the URL of an action's confirmation page.
func (h *Holder) Link(id, action string, exp time.Time) string {
	return strings.TrimSuffix(h.cfg.BaseURL, "/") + "/h/" + id + "/" + action + "?" + h.signer.LinkQuery(id, action, exp)
}

// ErrNotHeld is returned when acting on a message that is no longer held.
var ErrNotHeld = errors.New("hold: the message is no longer held")

// Release delivers the held message to its held recipients (fix: to the
// suggested addresses instead). It happens exactly once across nodes.
func (h *Holder) Release(ctx context.Context, id, actor string, fix bool) error {
	kind := "released"
	if fix {
		kind = "released-fixed"
	}
	if err := h.store.Transition(ctx, id, store.StateHeld, store.StateReleasing,
		store.Event{Time: h.now(), MessageID: id, Kind: "releasing", Actor: actor}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrNotHeld
		}
		return fmt.Errorf("hold: release %s: %w", id, err)
	}
	return h.deliver(ctx, id, actor, kind, fix)
}

// deliver re-injects a message claimed in state releasing.
func (h *Holder) deliver(ctx context.Context, id, actor, kind string, fix bool) error {
	m, err := h.store.Get(ctx, id)
	if err == nil {
		var to []string
		for _, r := range m.Recipients {
			a := r.Address
			if fix && r.Suggestion != "" {
				a = r.Suggestion
			}
			to = append(to, a)
		}
		raw := append([]byte(ReleaseHeaderName+": "+h.signer.ReleaseHeader(id, to, h.now().Add(24*time.Hour))+"\r\n"), m.Raw...)
		err = h.send(ctx, h.cfg.ReinjectSMTP, m.Sender, to, raw)
	}
	if err != nil {
		h.log.Error("release failed; the message stays held", "id", id, "err", err)
		back := store.Event{Time: h.now(), MessageID: id, Kind: "release-failed", Actor: actor, Detail: err.Error()}
		if terr := h.store.Transition(context.WithoutCancel(ctx), id, store.StateReleasing, store.StateHeld, back); terr != nil {
			h.log.Error("could not put the message back on hold", "id", id, "err", terr)
		}
		return fmt.Errorf("hold: release %s: %w", id, err)
	}
	if err := h.store.Transition(ctx, id, store.StateReleasing, store.StateReleased,
		store.Event{Time: h.now(), MessageID: id, Kind: kind, Actor: actor}); err != nil {
		return fmt.Errorf("hold: release %s: delivered, but: %w", id, err)
	}
	h.log.Info("released", "id", id, "actor", actor, "fixed", fix)
	return nil
}

// Discard drops a held message.
func (h *Holder) Discard(ctx context.Context, id, actor string) error {
	err := h.store.Transition(ctx, id, store.StateHeld, store.StateDiscarded,
		store.Event{Time: h.now(), MessageID: id, Kind: "discarded", Actor: actor})
	if errors.Is(err, store.ErrConflict) {
		return ErrNotHeld
	}
	return err
}

// Sweep handles what is due: expired holds (discarded or released, and the
// sender told), releases a dead node left half done, and notifications
// that failed. Run calls it periodically; it is safe on several nodes at
// once.
func (h *Holder) Sweep(ctx context.Context) {
	now := h.now()
	expired, stale, err := h.store.Due(ctx, now, now.Add(-10*time.Minute), 100)
	if err != nil {
		h.log.Error("hold sweep", "err", err)
		return
	}
	for _, id := range expired {
		if h.cfg.OnExpiry == "release" {
			if err := h.Release(ctx, id, "system:expiry", false); err != nil && !errors.Is(err, ErrNotHeld) {
				h.log.Error("release on expiry", "id", id, "err", err)
			}
			continue
		}
		err := h.store.Transition(ctx, id, store.StateHeld, store.StateExpired, store.Event{Time: now, MessageID: id, Kind: "expired", Actor: "system"})
		if err != nil {
			continue // another node got it
		}
		if m, err := h.store.Get(ctx, id); err == nil && m.Sender != "" {
			if err := h.send(ctx, h.cfg.NotifySMTP, h.cfg.NotifyFrom, []string{m.Sender}, h.expiryNotice(m)); err != nil {
				h.log.Error("expiry notice", "id", id, "err", err)
			}
		}
	}
	for _, id := range stale {
		// A node died while re-injecting: try again. If it had already
		// delivered, the recipients get the message twice; never zero.
		h.log.Warn("retrying a release a node left unfinished", "id", id)
		if err := h.deliver(ctx, id, "system:retry", "released", false); err != nil {
			h.log.Error("retrying release", "id", id, "err", err)
		}
	}
	held, err := h.store.List(ctx, store.Filter{States: []store.State{store.StateHeld}, Limit: 100})
	if err != nil {
		return
	}
	for _, m := range held {
		if m.NotifiedAt.IsZero() && now.Sub(m.CreatedAt) > h.cfg.Sweep {
			if err := h.Notify(ctx, m.ID); err != nil {
				h.log.Error("notification retry", "id", m.ID, "err", err)
			}
		}
	}
}

// Run sweeps until ctx ends.
func (h *Holder) Run(ctx context.Context) {
	t := time.NewTicker(h.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Sweep(ctx)
		}
	}
}
