package daemon

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/store"
)

func TestWithRulesAddsRuntimeRulesAndSkipsBadOnes(t *testing.T) {
	cfg := config.Default()
	cfg.Policy.Allow = []string{"friend.ml"}
	rules := []store.Rule{{ID: 1, Kind: "allow", Pattern: "partner.ml"}, {ID: 2, Kind: "allow", Pattern: "x..ml"}, {ID: 3, Kind: "deny", Pattern: ".ml"}}
	var log bytes.Buffer
	got := withRules(cfg, rules, slog.New(slog.NewTextHandler(&log, nil)))
	if !slices.Equal(got.Policy.Allow, []string{"friend.ml", "partner.ml"}) || !slices.Equal(got.Policy.Deny, []string{".ml"}) {
		t.Fatalf("allow %v deny %v", got.Policy.Allow, got.Policy.Deny)
	}
	if !slices.Equal(cfg.Policy.Allow, []string{"friend.ml"}) || len(cfg.Policy.Deny) != 0 {
		t.Fatal("withRules changed the running config")
	}
	if !strings.Contains(log.String(), "skipping a run-time policy rule") || !strings.Contains(log.String(), "x..ml") {
		t.Fatalf("no warning for the bad rule: %s", log.String())
	}
	if _, err := EngineFrom(got, detect.Knowledge{}); err != nil {
		t.Fatalf("the engine does not build with the rules: %v", err)
	}
}
