package daemon

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// Knowledge is what the engine is built from beside the config: the
// command line's extra protected domains, known files and deny files.
type Knowledge struct {
	Protect, Known, Deny []string
}

// EngineBuilder builds the engine: configured knowledge and policy, plus,
// with a store, the correspondents learned from traffic (those with enough
// evidence), the run-time rules and the per-sender allows. A read of the
// store that fails keeps its last good answer, so that a store outage
// during a reload cannot drop a deny rule.
type EngineBuilder struct {
	Knowledge Knowledge
	Store     store.Store // nil: no store
	Log       *slog.Logger

	lastGood storeKnowledge
}

// Build builds an engine from cfg. It also returns the configured
// knowledge (files and command line, without what the store learned), for
// the dashboard's policy page.
func (b *EngineBuilder) Build(ctx context.Context, cfg *config.Config) (*gate.Engine, detect.Knowledge, error) {
	k, err := cfg.Knowledge(b.Knowledge.Protect, b.Knowledge.Known, b.Knowledge.Deny...)
	if err != nil {
		return nil, k, err
	}
	eng, err := b.BuildWith(ctx, cfg, k)
	return eng, k, err
}

// BuildWith builds an engine from cfg and the configured knowledge k,
// already read from its files (cfg.Knowledge with b's command-line
// knowledge); k is not changed.
func (b *EngineBuilder) BuildWith(ctx context.Context, cfg *config.Config, k detect.Knowledge) (*gate.Engine, error) {
	k.Known = maps.Clone(k.Known) // build adds what the store learned
	return b.build(ctx, cfg, k)
}

func (b *EngineBuilder) build(ctx context.Context, cfg *config.Config, k detect.Knowledge) (*gate.Engine, error) {
	var err error
	var allows []store.SenderAllow
	if b.Store != nil {
		learned, rules := b.lastGood.read(ctx, b.Store, b.Log)
		for _, c := range learned {
			// Trust needs evidence: several senders on several days.
			if cfg.Detect.Learn.Trusted(c.Senders, c.Days) {
				k.Known[c.Domain] += int(min(c.Deliveries, 1<<30))
			}
		}
		cfg = withRules(cfg, rules, b.Log)
		if allows, err = b.Store.ListSenderAllows(ctx); err != nil {
			b.Log.Warn("per-sender allows unavailable", "err", err)
		}
	}
	eng, err := EngineFrom(cfg, k)
	if err != nil || len(allows) == 0 {
		return eng, err
	}
	var pa []policy.SenderAllow
	for _, a := range allows {
		x := policy.SenderAllow{Sender: a.Sender, Recipient: a.Recipient}
		if err := x.Check(); err != nil {
			b.Log.Warn("skipping a per-sender allow", "id", a.ID, "err", err)
			continue
		}
		pa = append(pa, x)
	}
	if eng.Policy, err = eng.Policy.WithSenderAllows(pa); err != nil {
		return nil, err
	}
	return eng, nil
}

// EngineFrom builds an engine from a config and the knowledge already
// loaded, with nothing from a store (stray config check).
func EngineFrom(cfg *config.Config, k detect.Knowledge) (*gate.Engine, error) {
	c, err := detect.New(k)
	if err != nil {
		return nil, err
	}
	p, err := policy.Compile(cfg.Policy, "policy")
	if err != nil {
		return nil, err
	}
	return &gate.Engine{Checker: c, Policy: p, WarnHeader: cfg.Hold.WarnHeader}, nil
}

// withRules returns cfg with the run-time rules (from the dashboard) added
// to its policy's allow and deny lists; cfg itself is not changed. A rule
// the policy cannot read is skipped with a warning: a bad row in the store
// must not stop the daemon from starting or reloading.
func withRules(cfg *config.Config, rules []store.Rule, log *slog.Logger) *config.Config {
	if len(rules) == 0 {
		return cfg
	}
	c := *cfg
	c.Policy.Allow = slices.Clone(cfg.Policy.Allow)
	c.Policy.Deny = slices.Clone(cfg.Policy.Deny)
	for _, r := range rules {
		if _, err := policy.NormalizePattern(r.Pattern); err != nil {
			log.Warn("skipping a run-time policy rule", "id", r.ID, "kind", r.Kind, "pattern", r.Pattern, "err", err)
			continue
		}
		switch r.Kind {
		case "allow":
			c.Policy.Allow = append(c.Policy.Allow, r.Pattern)
		case "deny":
			c.Policy.Deny = append(c.Policy.Deny, r.Pattern)
		}
	}
	return &c
}

// storeKnowledge is what the store adds to the configured knowledge: the
// correspondents learned from traffic and the run-time rules from the
// dashboard. A read that fails keeps the last good answer.
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
