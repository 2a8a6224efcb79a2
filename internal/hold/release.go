package hold

import (
	"context"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// Released implements gate.Releases: a release header is honoured when its
// signature and expiry hold and the message is being released right now
// (state releasing), so a header copied into another message, or replayed
// after the release, is ignored.
func (h *Holder) Released(ctx context.Context, header string) ([]string, bool) {
	id, rcpts, err := h.signer.VerifyReleaseHeader(header, h.now())
	if err != nil {
		h.log.Warn("ignored a release header", "err", err)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := h.store.Get(ctx, id)
	if err != nil || m.State != store.StateReleasing {
		h.log.Warn("ignored a release header for a message not being released", "id", id)
		return nil, false
	}
	return rcpts, true
}
