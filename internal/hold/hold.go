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
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/store"
)

// Config is the hold section of the configuration, resolved.
type Config struct {
	Node     string          // this node's name, for the event log
	BaseURL  string          // where the link pages are served, e.g. https://stray.example.com
	Expire   time.Duration   // how long a message waits for its sender
	OnExpiry config.OnExpiry // discard (default) or release
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
	// ReleaseStale is how long a message may stay in releasing before the
	// sweep takes its node for dead and retries the release, with the
	// choice stored when it was claimed (default 10m).
	ReleaseStale time.Duration
	// RetryWindow is how long after a message was held a delivery with
	// the same content still counts as the MTA retrying it once that
	// message is no longer held (default 15m). A message still held is
	// always a retry; an identical message arriving later is a new one.
	RetryWindow time.Duration
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
	// crash is called at the named steps of a release; crashPoint
	// (STRAY_TEST_CRASH_AT) outside tests.
	crash func(point string)
	// warns bounds the warn notices in flight (Warned).
	warns chan struct{}
}

// New makes a Holder. send may be nil (SMTP via SendMail).
func New(cfg Config, st store.Store, signer *Signer, log *slog.Logger, send Mailer) *Holder {
	if cfg.Expire <= 0 {
		cfg.Expire = 72 * time.Hour
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = time.Minute
	}
	if cfg.ReleaseStale <= 0 {
		cfg.ReleaseStale = 10 * time.Minute
	}
	if cfg.RetryWindow <= 0 {
		cfg.RetryWindow = 15 * time.Minute
	}
	if send == nil {
		send = SendMail
	}
	return &Holder{cfg: cfg, store: st, signer: signer, log: log, send: send, now: time.Now, crash: crashPoint,
		warns: make(chan struct{}, maxWarnsInFlight)}
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
//
// An identical message sent again later (tomorrow's report) is a new
// message: generation n > 0 gives the n-th such message its own id, so a
// retry of it maps to its id too.
func (h *Holder) messageID(r Request, gen int) string {
	m := hmac.New(sha256.New, h.signer.key)
	if gen > 0 {
		fmt.Fprintf(m, "gen\x00%d\x00", gen)
	}
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

// maxGenerations bounds the identical messages told apart by their ids
// (messageID's generations); past it a new message gets a random id.
const maxGenerations = 1000

// Held is what Hold did with a message.
type Held struct {
	ID string
	// Waiting: the message is held in the store waiting for its sender
	// (a new hold, or a retry of a message still held); the sender is to
	// be notified. False for a retry of a message already released,
	// discarded or expired: the MTA drops the held recipients and
	// nobody is told again.
	Waiting bool
	// Retry: the MTA delivered this message before (stray crashed between
	// storing it and answering).
	Retry bool
}

// Hold stores the message durably and returns its id; see HoldMessage.
func (h *Holder) Hold(ctx context.Context, r Request) (string, error) {
	held, err := h.HoldMessage(ctx, r)
	return held.ID, err
}

// HoldMessage stores the message durably. When it returns nil the front
// end may drop the held recipients from this delivery. A retried delivery
// maps to the message it repeats while that is still held, or was held
// less than RetryWindow ago; otherwise an identical message is held anew.
func (h *Holder) HoldMessage(ctx context.Context, r Request) (Held, error) {
	now := h.now()
	id := ""
	for gen := 0; gen < maxGenerations && id == ""; gen++ {
		cand := h.messageID(r, gen)
		m, err := h.store.Get(ctx, cand)
		switch {
		case errors.Is(err, store.ErrNotFound):
			id = cand
		case err != nil:
			return Held{}, fmt.Errorf("hold: %w", err)
		case m.State == store.StateHeld || m.State == store.StateReleasing || now.Sub(m.CreatedAt) < h.cfg.RetryWindow:
			h.log.Info("message already held; a retried delivery", "id", cand, "queue_id", r.QueueID, "state", m.State)
			return Held{ID: cand, Waiting: m.State == store.StateHeld, Retry: true}, nil
		}
	}
	if id == "" {
		id = randomID()
	}
	m := &store.Message{
		ID: id, QueueID: r.QueueID, Sender: r.Sender, Subject: headerSubject(r.Raw), Recipients: r.Held, Raw: r.Raw, Size: int64(len(r.Raw)),
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
			// Another node held the same retry first.
			return Held{ID: id, Waiting: true, Retry: true}, nil
		}
		return Held{}, fmt.Errorf("hold: %w", err)
	}
	return Held{ID: id, Waiting: true}, nil
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Notify tells the sender that the message is held and how to answer.
func (h *Holder) Notify(ctx context.Context, id string) error {
	m, err := h.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("hold: notify %s: %w", id, err)
	}
	if m.State != store.StateHeld || !m.NotifiedAt.IsZero() {
		// Links to a message no longer waiting help nobody; one
		// notification per message is enough.
		h.log.Info("notification not needed", "id", id, "state", m.State, "notified", !m.NotifiedAt.IsZero())
		return nil
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
// suggested addresses instead). It happens exactly once across nodes: the
// choice is stored with the move to releasing, and a retry after a crash
// repeats it.
func (h *Holder) Release(ctx context.Context, id, actor string, fix bool) error {
	m, err := h.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotHeld
	}
	if err != nil {
		return fmt.Errorf("hold: release %s: %w", id, err)
	}
	if m.State != store.StateHeld {
		return ErrNotHeld
	}
	rel := store.Release{Action: store.ReleaseAsTyped}
	if fix {
		rel.Action = store.ReleaseFixed
	}
	for _, r := range m.Recipients {
		a := r.Address
		if fix && r.Suggestion != "" {
			a = r.Suggestion
		}
		rel.To = append(rel.To, a)
	}
	ev := store.Event{Time: h.now(), MessageID: id, Kind: "releasing", Actor: actor,
		Detail: "action=" + rel.Action + " to=" + strings.Join(rel.To, ",")}
	if err := h.store.ClaimRelease(ctx, id, rel, ev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrNotHeld
		}
		return fmt.Errorf("hold: release %s: %w", id, err)
	}
	h.crash("after-claim")
	return h.deliver(ctx, id, actor)
}

// deliver re-injects a message claimed in state releasing, as the claim
// chose (to the held recipients, or to the suggested addresses).
func (h *Holder) deliver(ctx context.Context, id, actor string) error {
	m, err := h.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("hold: release %s: %w", id, err)
	}
	if m.State != store.StateReleasing {
		return nil // someone finished it meanwhile
	}
	if m.Release.Action == "" || len(m.Release.To) == 0 {
		// Claimed by a stray that did not record the choice: never guess
		// (as typed could be the very leak the sender avoided). Ask again.
		h.log.Warn("a release without its recorded choice; the message is held again", "id", id)
		return h.store.Transition(ctx, id, store.StateReleasing, store.StateHeld,
			store.Event{Time: h.now(), MessageID: id, Kind: "release-failed", Actor: actor, Detail: "the choice was not recorded; answer again"})
	}
	to := m.Release.To
	fixed := m.Release.Action == store.ReleaseFixed
	body := m.Raw
	if fixed {
		body = rewriteRecipients(m.Raw, fixes(m))
	}
	raw := append([]byte(ReleaseHeaderName+": "+h.signer.ReleaseHeader(id, to, h.now().Add(24*time.Hour))+"\r\n"), body...)
	h.crash("before-reinject")
	err = h.send(withEnvelopeID(ctx, ReleaseEnvelopeID(id)), h.cfg.ReinjectSMTP, m.Sender, to, raw)
	if err == nil {
		h.awaitRecord(ctx, id)
	}
	h.crash("after-reinject")
	if err != nil {
		h.log.Error("release failed; the message stays held", "id", id, "err", err)
		back := store.Event{Time: h.now(), MessageID: id, Kind: "release-failed", Actor: actor, Detail: err.Error()}
		if terr := h.store.Transition(context.WithoutCancel(ctx), id, store.StateReleasing, store.StateHeld, back); terr != nil {
			h.log.Error("could not put the message back on hold", "id", id, "err", terr)
		}
		return fmt.Errorf("hold: release %s: %w", id, err)
	}
	if err := h.finish(ctx, m, actor); err != nil {
		return fmt.Errorf("hold: release %s: delivered, but: %w", id, err)
	}
	h.crash("after-state-change")
	h.log.Info("released", "id", id, "actor", actor, "fixed", fixed)
	return nil
}

// recordWait bounds how long deliver waits for the milter to record a copy
// the MTA accepted.
const recordWait = 3 * time.Second

// awaitRecord waits, briefly, for the milter in front of the MTA to record
// the copy the MTA just accepted (Reinjected): it answers the MTA first and
// records right after, so the MTA's reply can reach us before the record is
// durable. Once it is, a crash here loses nothing and sends nothing twice.
// Behind an MTA without stray's milter this costs recordWait per release.
func (h *Holder) awaitRecord(ctx context.Context, id string) {
	deadline := time.Now().Add(recordWait)
	for time.Now().Before(deadline) {
		if m, err := h.store.Get(ctx, id); err != nil || m.State != store.StateReleasing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// finish moves a re-injected message to released. The milter may have
// done so already, when the MTA accepted the copy (Reinjected): that is
// success too.
func (h *Holder) finish(ctx context.Context, m *store.Message, actor string) error {
	kind := "released"
	if m.Release.Action == store.ReleaseFixed {
		kind = "released-fixed"
	}
	err := h.store.Transition(ctx, m.ID, store.StateReleasing, store.StateReleased,
		store.Event{Time: h.now(), MessageID: m.ID, Kind: kind, Actor: actor})
	if errors.Is(err, store.ErrConflict) {
		if cur, gerr := h.store.Get(ctx, m.ID); gerr == nil && cur.State == store.StateReleased {
			return nil
		}
	}
	return err
}

// fixes maps each held recipient that has a suggestion to it.
func fixes(m *store.Message) map[string]string {
	f := map[string]string{}
	for _, r := range m.Recipients {
		if r.Suggestion != "" {
			f[strings.ToLower(r.Address)] = r.Suggestion
		}
	}
	return f
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
	expired, stale, err := h.store.Due(ctx, now, now.Add(-h.cfg.ReleaseStale), 100)
	if err != nil {
		h.log.Error("hold sweep", "err", err)
		return
	}
	for _, id := range expired {
		if h.cfg.OnExpiry == config.ExpiryRelease {
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
		// A node died while re-injecting: try again, as its sender
		// chose. A copy the MTA already accepted was marked released by
		// the milter, so it is not found here. Of several nodes sweeping
		// at once, one retries.
		err := h.store.RetryRelease(ctx, id, now.Add(-h.cfg.ReleaseStale),
			store.Event{Time: now, MessageID: id, Kind: "release-retry", Actor: "node:" + h.cfg.Node})
		if err != nil {
			continue // another node retries it, or it finished
		}
		h.log.Warn("retrying a release a node left unfinished", "id", id)
		if err := h.deliver(ctx, id, "system:retry"); err != nil {
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
