package hold

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// Released implements gate.Releases: a release header is honoured when its
// signature and expiry hold and the message is being released right now
// (state releasing), so a header copied into another message, or replayed
// after the release, is ignored. by is the actor of the release (its
// "releasing" event: "sender", "admin:NAME"), "" when that cannot be read.
func (h *Holder) Released(ctx context.Context, header string) (rcpts []string, by string, ok bool) {
	id, rcpts, err := h.signer.VerifyReleaseHeader(header, h.now())
	if err != nil {
		h.log.Warn("ignored a release header", "err", err)
		return nil, "", false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := h.store.Get(ctx, id)
	if err != nil || m.State != store.StateReleasing {
		h.log.Warn("ignored a release header for a message not being released", "id", id)
		return nil, "", false
	}
	evs, err := h.store.Events(ctx, store.EventFilter{MessageID: id, Kind: "releasing", Limit: 1})
	switch {
	case err != nil:
		h.log.Warn("reading who released a message", "id", id, "err", err)
	case len(evs) == 1:
		by = evs[0].Actor
	}
	return rcpts, by, true
}

// ReleaseEnvelopeID is the DSN envelope id (ENVID) a re-injection of
// message id carries. It lets the milter recognise, at MAIL, a re-injection
// whose recipients are all clean (sent to the suggested addresses), so
// that for it alone the MTA streams the headers: the milter then removes
// the release header and records the delivery. Any other message is still
// accepted at DATA.
func ReleaseEnvelopeID(id string) string { return releaseEnvPrefix + id }

const releaseEnvPrefix = "stray-release-"

// IsReleaseEnvelopeID reports whether a MAIL parameter list carries a
// release envelope id (ENVID=stray-release-…). It only makes the milter
// look at the headers; the signed header alone releases anything.
func IsReleaseEnvelopeID(params []string) bool {
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(k, "ENVID") && strings.HasPrefix(v, releaseEnvPrefix) {
			return true
		}
	}
	return false
}

type envelopeIDKey struct{}

// withEnvelopeID asks SendMail to send ENVID=id (when the server offers
// DSN).
func withEnvelopeID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, envelopeIDKey{}, id)
}

func envelopeID(ctx context.Context) string {
	id, _ := ctx.Value(envelopeIDKey{}).(string)
	return id
}

// Reinjection is what a message carrying a release header is.
type Reinjection int

const (
	// NotReinjected: no valid release header (forged, expired, or about
	// a message not being released): the message is decided as any other.
	NotReinjected Reinjection = iota
	// Reinjecting: stray's own re-injection of a message in releasing.
	Reinjecting
	// Duplicate: a valid header of a message already released: a second
	// copy (a release retried after a crash, when the first copy had
	// reached the MTA). Dropping it delivers the message exactly once.
	Duplicate
)

// CheckReinjection classifies a message by the value of its release
// header, returning the held message's id.
func (h *Holder) CheckReinjection(ctx context.Context, header string) (string, Reinjection) {
	id, _, err := h.signer.VerifyReleaseHeader(header, h.now())
	if err != nil {
		return "", NotReinjected
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := h.store.Get(ctx, id)
	switch {
	case err != nil:
		return id, NotReinjected
	case m.State == store.StateReleasing:
		return id, Reinjecting
	case m.State == store.StateReleased:
		return id, Duplicate
	}
	return id, NotReinjected
}

// Reinjected records that the MTA accepted the re-injection of message id
// (the milter calls it once it has answered accept): the message is
// released, and a retry of the release finds nothing left to do. A crash
// between the MTA's acceptance and this call leaves the message in
// releasing, and the retry delivers it a second time: never zero times.
func (h *Holder) Reinjected(ctx context.Context, id string) {
	h.crash("before-mark-released")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := h.store.Get(ctx, id)
	if err != nil {
		h.log.Error("recording a re-injection", "id", id, "err", err)
		return
	}
	if err := h.finish(ctx, m, "node:"+h.cfg.Node); err != nil && !errors.Is(err, store.ErrConflict) {
		h.log.Error("recording a re-injection", "id", id, "err", err)
	}
}
