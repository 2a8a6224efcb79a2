package gate_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

type ctxKey struct{}

// releases is a gate.Releases that keeps the context it was asked with.
type releases struct{ got context.Context }

func (r *releases) Released(ctx context.Context, _ string) ([]string, string, bool) {
	r.got = ctx
	return []string{"j@gmial.com"}, "sender", ctx.Err() == nil
}

// Issue 12: End called the store with context.Background(), so a message
// in progress could not be bounded by its connection or by shutdown. The
// front end's context reaches the store; a context that has ended
// releases nothing.
func TestEndAsksTheStoreWithTheFrontEndsContext(t *testing.T) {
	t.Parallel()
	live := context.WithValue(context.Background(), ctxKey{}, "conn-7")
	ended, cancel := context.WithCancel(live)
	cancel()
	tests := []struct {
		name         string
		ctx          context.Context
		wantReleased int
	}{
		{"live", live, 1},
		{"ended", ended, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rel := &releases{}
			g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}, gate.WithReleases(rel))
			s := g.NewSession("test", nil)
			s.Mail("a@army.mil")
			if r := s.Rcpt("j@gmial.com"); r.Decision.Action != policy.Hold {
				t.Fatalf("j@gmial.com: %s, want hold", r.Decision.Action)
			}
			s.Header("X-Stray-Release", "v1.signed")
			end := s.End(tt.ctx)
			if rel.got == nil || rel.got.Value(ctxKey{}) != "conn-7" {
				t.Fatalf("Released was asked with %v, not the front end's context", rel.got)
			}
			if len(end.Released) != tt.wantReleased {
				t.Errorf("released %v, want %d", end.Released, tt.wantReleased)
			}
		})
	}
}

// The HTTP check API's recipients are not mail and are never logged, not
// even one stray cannot read; nothing is recorded either.
func TestCheckLogsAndRecordsNothing(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	rec := &countingRecorder{}
	g := gate.New(gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}).Engine(),
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil, gate.WithRecorder(rec))
	res := g.Check(context.Background(), "a@army.mil", []string{"b@army.ml", "not an address", "c@army.mil"})
	if len(res) != 3 || res[0].Decision.Action != policy.Reject || res[1].Decision.Rule != policy.RuleUnreadable {
		t.Fatalf("results %+v", res)
	}
	if logs.Len() != 0 {
		t.Errorf("Check logged:\n%s", logs.String())
	}
	if rec.n != 0 {
		t.Errorf("Check recorded %d calls", rec.n)
	}
}

type countingRecorder struct{ n int }

func (r *countingRecorder) Delivered(string, []gate.Delivery)       { r.n++ }
func (r *countingRecorder) Flagged(string, string, gate.RcptResult) { r.n++ }
func (r *countingRecorder) Decided(detect.Verdict, policy.Action)   { r.n++ }
