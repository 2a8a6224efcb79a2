package cli

import (
	"context"
	"log/slog"
	"sync"

	"github.com/stray-mail/stray/internal/store"
)

// storeKnowledge is what the store adds to the configured knowledge: the
// correspondents learned from traffic and the run-time rules from the
// dashboard. A read that fails keeps the last good answer, so that a store
// outage during a reload cannot drop a deny rule.
type storeKnowledge struct {
	mu           sync.Mutex
	learned      []store.Correspondent
	rules        []store.Rule
	learnedValid bool // learned holds a good answer
	rulesValid   bool
}

// read asks the store for the learned correspondents and the run-time
// rules; what it cannot read is the last good answer, with a warning.
func (s *storeKnowledge) read(ctx context.Context, st store.Store, log *slog.Logger) ([]store.Correspondent, []store.Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if learned, err := st.Correspondents(ctx, 0); err == nil {
		s.learned, s.learnedValid = learned, true
	} else if s.learnedValid {
		log.Warn("learned correspondents unavailable; keeping the last good ones", "count", len(s.learned), "err", err)
	} else {
		log.Warn("learned correspondents unavailable; using the known files only", "err", err)
	}
	if rules, err := st.ListRules(ctx); err == nil {
		s.rules, s.rulesValid = rules, true
	} else if s.rulesValid {
		log.Warn("run-time policy rules unavailable; keeping the last good ones", "count", len(s.rules), "err", err)
	} else {
		log.Warn("run-time policy rules unavailable; using the configured policy only", "err", err)
	}
	return s.learned, s.rules
}
