package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

func TestRecorderCountsEveryDecisionAndLogsFlaggedOnesAsJSON(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	r := New(st, slog.New(slog.DiscardHandler))
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

// Only clean recipients teach stray who the organisation writes to; an
// allowed one teaches nothing, and a release as typed allows that one
// address for that one sender.
func TestRecorderLearnsOnlyCleanRecipientsAndRemembersReleasesPerSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	r := New(st, slog.New(slog.DiscardHandler))
	var changed atomic.Int32
	r.OnSenderAllow(func() { changed.Add(1) })
	r.Delivered("Alice@Army.mil", []gate.Delivery{
		{Recipient: "a@Partner.example", Passed: gate.PassedClean},
		{Recipient: "j@army.ml", Passed: gate.PassedAllowed},
		{Recipient: "K@Gmial.com", Passed: gate.PassedReleased},
	})
	r.Delivered("", []gate.Delivery{{Recipient: "x@army.ml", Passed: gate.PassedReleased}}) // a bounce: nobody to allow
	r.Delivered("bob@army.mil", []gate.Delivery{{Recipient: "k@gmial.com", Passed: gate.PassedReleased}})
	r.Delivered("alice@army.mil", []gate.Delivery{{Recipient: "k@gmial.com", Passed: gate.PassedReleased}}) // again: stored once
	// Released by an administrator from the dashboard or the command line:
	// the allow names them, not the sender.
	r.Delivered("carol@army.mil", []gate.Delivery{{Recipient: "k@gmial.com", Passed: gate.PassedReleased, By: "admin:olivia"}})
	r.Delivered("dave@army.mil", []gate.Delivery{{Recipient: "k@gmial.com", Passed: gate.PassedReleased, By: "sender"}})
	r.Close()

	cs, err := st.Correspondents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Domain != "partner.example" {
		t.Errorf("learned %+v, want partner.example only", cs)
	}
	allows, err := st.ListSenderAllows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range allows {
		got = append(got, a.Sender+" → "+a.Recipient+" by "+a.CreatedBy)
	}
	want := []string{"alice@army.mil → k@gmial.com by release", "bob@army.mil → k@gmial.com by release",
		"carol@army.mil → k@gmial.com by admin:olivia", "dave@army.mil → k@gmial.com by release"}
	if !slices.Equal(got, want) {
		t.Errorf("sender allows %q, want %q", got, want)
	}
	if n := changed.Load(); n != 4 {
		t.Errorf("OnSenderAllow called %d times, want 4 (once per new allow)", n)
	}
}

// countingStore counts the store's delivery calls; with fail set, its
// next AddDeliveryCounts fails.
type countingStore struct {
	store.Store
	one, batches atomic.Int32
	fail         atomic.Bool
}

func (c *countingStore) AddDeliveries(ctx context.Context, sender string, domains []string, at time.Time) error {
	c.one.Add(1)
	return c.Store.AddDeliveries(ctx, sender, domains, at)
}

func (c *countingStore) AddDeliveryCounts(ctx context.Context, counts []store.DeliveryCount) error {
	c.batches.Add(1)
	if c.fail.Swap(false) {
		return errors.New("store down")
	}
	return c.Store.AddDeliveryCounts(ctx, counts)
}

// Deliveries are summed in memory and written together: a commit a
// message would wait on the disk beside the MTA's own queue writes. A
// failed write keeps them for the next; what the store would refuse
// (a sender that is not UTF-8) is dropped alone.
func TestRecorderWritesDeliveriesInBatchesAndKeepsThemWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	cs := &countingStore{Store: st}
	r := New(cs, slog.New(slog.DiscardHandler))
	defer r.Close()
	for i := range 1000 {
		r.Delivered(fmt.Sprintf("s%d@army.mil", i%4), []gate.Delivery{{Recipient: "a@partner.example", Passed: gate.PassedClean}})
	}
	r.Delivered("bad\xff@army.mil", []gate.Delivery{{Recipient: "b@partner.example", Passed: gate.PassedClean}})
	cs.fail.Store(true)
	r.Flush() // fails: kept
	if got, _ := st.Correspondents(ctx, 0); len(got) != 0 {
		t.Fatalf("written by a failed flush: %+v", got)
	}
	r.Flush()
	got, err := st.Correspondents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Domain != "partner.example" || got[0].Deliveries != 1000 || got[0].Senders != 4 {
		t.Errorf("learned %+v, want partner.example: 1000 deliveries from 4 senders", got)
	}
	if one, b := cs.one.Load(), cs.batches.Load(); one != 0 || b != 2 {
		t.Errorf("%d single writes and %d batches, want none and 2 (one failed)", one, b)
	}
	// Without Flush, within LearnFlush or so.
	r.Delivered("s0@army.mil", []gate.Delivery{{Recipient: "c@other.example", Passed: gate.PassedClean}})
	deadline := time.Now().Add(LearnFlush + 5*time.Second)
	for {
		if got, _ := st.Correspondents(ctx, 0); len(got) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a delivery was not written within LearnFlush")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openStore is a fresh SQLite store, closed when the test ends.
func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
