package hold

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

func TestRecorderCountsEveryDecisionAndLogsFlaggedOnesAsJSON(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := NewRecorder(st, slog.New(slog.DiscardHandler))
	for i := 0; i < 3; i++ {
		r.Decided(detect.OK, policy.Pass)
	}
	r.Decided(detect.Block, policy.Reject)
	r.Flagged("Q1", "a@army.mil", gate.RcptResult{Recipient: "b@army.ml", Decision: policy.Decision{
		Finding: detect.Finding{Verdict: detect.Block, Intended: "army.mil", Suggestion: "b@army.mil"}, Action: policy.Reject}})
	r.Flush()
	r.Decided(detect.OK, policy.Pass) // written by Close
	r.Close()

	counts, err := st.DecisionCounts(ctx, time.Now().AddDate(0, 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range counts {
		got[c.Verdict+"/"+c.Action] += c.N
	}
	if got["ok/pass"] != 4 || got["block/reject"] != 1 || len(got) != 2 {
		t.Fatalf("counts %v", got)
	}
	evs, err := st.Events(ctx, store.EventFilter{Kind: "decision"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %v %v", evs, err)
	}
	var d Decision
	if err := json.Unmarshal([]byte(evs[0].Detail), &d); err != nil {
		t.Fatal(err)
	}
	if d != (Decision{QueueID: "Q1", Sender: "a@army.mil", Recipient: "b@army.ml", Verdict: "block", Intended: "army.mil", Suggestion: "b@army.mil", Action: "reject"}) {
		t.Fatalf("decision %+v", d)
	}
}
