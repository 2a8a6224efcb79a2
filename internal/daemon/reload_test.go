package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// flakyStore is a real store whose reads of rules and correspondents fail
// on the calls listed in failOn (1 is the first call).
type flakyStore struct {
	store.Store
	failOn               map[int64]bool
	rulesN, correspondsN atomic.Int64
}

var errStoreDown = errors.New("store down (test)")

func (f *flakyStore) ListRules(ctx context.Context) ([]store.Rule, error) {
	if f.failOn[f.rulesN.Add(1)] {
		return nil, errStoreDown
	}
	return f.Store.ListRules(ctx)
}

func (f *flakyStore) Correspondents(ctx context.Context, limit int) ([]store.Correspondent, error) {
	if f.failOn[f.correspondsN.Add(1)] {
		return nil, errStoreDown
	}
	return f.Store.Correspondents(ctx, limit)
}

// lockedLog is a log destination safe for concurrent writes.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// decideRcpt asks the daemon's running gate about one recipient.
func decideRcpt(d *Daemon, rcpt string) policy.Decision {
	s := d.gate.NewSession("test", d.log)
	s.Mail("j@example.com")
	return s.Rcpt(rcpt).Decision
}

// TestRuntimeRulesSurviveAReloadWhileTheStoreIsDown is issue 17 point 7: a
// reload that could not read the store dropped every dashboard rule, deny
// rules included, and every learned correspondent.
func TestRuntimeRulesSurviveAReloadWhileTheStoreIsDown(t *testing.T) {
	t.Parallel()
	cfgPath, dsn := storeConfig(t)
	real := openTestStore(t, dsn)
	ctx := context.Background()
	if err := real.AddRule(ctx, &store.Rule{Kind: "deny", Pattern: "rival.example.net", CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	// Enough evidence to be trusted (detect.learn: 3 senders on 2 days).
	for i, sender := range []string{"j@example.com", "k@example.com", "l@example.com"} {
		if err := real.AddDeliveries(ctx, sender, []string{"acme-partner.com"}, time.Now().AddDate(0, 0, -i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := LoadConfig(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedLog
	st := &flakyStore{Store: real, failOn: map[int64]bool{2: true}}
	d := testDaemon(cfgPath, cfg, st, slog.New(slog.NewTextHandler(&logs, nil)))
	eng, _, err := d.build(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.gate = gate.New(eng, d.log, prometheus.NewRegistry())

	type want struct {
		rcpt    string
		refused bool // rejected by the deny rule
		flagged bool // any verdict but ok (a slip from a learned correspondent)
	}
	checks := []want{
		{"x@rival.example.net", true, true},
		{"x@acme-partmer.com", false, true},
		{"x@acme-partner.com", false, false},
	}
	expect := func(stage string, checks []want) {
		t.Helper()
		for _, w := range checks {
			dec := decideRcpt(d, w.rcpt)
			refused := dec.Enforced == policy.Reject && dec.Rule != ""
			flagged := dec.Finding.Verdict.String() != "ok" || dec.Rule != ""
			if refused != w.refused || flagged != w.flagged {
				t.Errorf("%s: %s: action %v rule %q verdict %v; want refused by a rule %v, flagged %v",
					stage, w.rcpt, dec.Enforced, dec.Rule, dec.Finding.Verdict, w.refused, w.flagged)
			}
		}
	}
	expect("at start", checks)

	d.Reload(ctx) // the store fails this time
	expect("after a reload with the store down", checks)
	if log := logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "last good") {
		t.Errorf("no warning that the last good rules are kept:\n%s", log)
	}

	// The store is back: a rule added meanwhile takes effect.
	if err := real.AddRule(ctx, &store.Rule{Kind: "deny", Pattern: "second.example.net", CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	d.Reload(ctx)
	expect("after the store came back", append(checks, want{"x@second.example.net", true, true}))
}

// testDaemon is a Daemon on st without listeners, as New makes it.
func testDaemon(cfgPath string, cfg *config.Config, st store.Store, log *slog.Logger) *Daemon {
	return &Daemon{opts: Options{ConfigPath: cfgPath}, cfg: cfg, st: st, log: log,
		builder: &EngineBuilder{Store: st, Log: log}}
}

func storeConfig(t *testing.T) (cfg, dsn string) {
	dir := t.TempDir()
	dsn = "sqlite:" + filepath.Join(dir, "s.db")
	cfg = filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: "+dsn+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, dsn
}

func openTestStore(t *testing.T, dsn string) store.Store {
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A reload counts everything learned up to that moment: the recorder
// writes deliveries every second, and a reload (SIGHUP, a rule change, the
// periodic refresh) writes what it holds first.
func TestReloadLearnsFromDeliveriesUpToThatMoment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: sqlite:"+filepath.Join(dir, "s.db")+
		"\nhold:\n  enabled: false\ndetect:\n  learn:\n    min_senders: 2\n    min_days: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(t.Context(), Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v := decideRcpt(d, "x@westlandhigh-schol.nz").Finding.Verdict.String(); v != "ok" {
		t.Fatalf("before learning: %s", v)
	}
	for _, sender := range []string{"a@example.org", "b@example.org"} {
		s := d.gate.NewSession("test", d.log)
		s.Mail(sender)
		s.Rcpt("y@westlandhigh-school.nz")
		s.End(t.Context())
	}
	if err := d.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := decideRcpt(d, "x@westlandhigh-schol.nz").Finding.Verdict.String(); v == "ok" {
		t.Errorf("after two senders and a reload: %s, want a slip of westlandhigh-school.nz", v)
	}
}
