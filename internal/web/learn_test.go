package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

func TestPolicyPageShowsLearningThresholdsEvidenceAndSenderAllows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.Policy = func(context.Context) PolicyView {
			return PolicyView{Mode: "enforce", Protected: []string{"mil"}, LearnMinSenders: 3, LearnMinDays: 2}
		}
	})
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	c := e.client()
	c.mustLogin("alice", "correct horse battery")
	ctx := context.Background()
	day := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i, s := range []string{"a@army.mil", "b@army.mil", "c@army.mil"} {
		if err := e.st.AddDeliveries(ctx, s, []string{"partner.example"}, day.Add(time.Duration(i)*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.AddDeliveries(ctx, "a@army.mil", []string{"gmial.com"}, day); err != nil {
		t.Fatal(err)
	}
	allow := &store.SenderAllow{Sender: "alice@army.mil", Recipient: "j@gmial.com", Note: "released as typed", CreatedBy: "release"}
	if err := e.st.AddSenderAllow(ctx, allow); err != nil {
		t.Fatal(err)
	}
	_, body := c.get("/policy")
	for _, want := range []string{
		"3 distinct senders on 2 distinct days", // the thresholds
		`id="learned"`, `id="sender-allows"`, "alice@army.mil", "j@gmial.com",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("policy page lacks %q", want)
		}
	}
	learned := body[strings.Index(body, `id="learned"`):]
	learned = learned[:strings.Index(learned, "</table>")]
	if !strings.Contains(learned, `<tr class="trusted"><td>partner.example</td>`) || !strings.Contains(learned, `<tr class="untrusted"><td>gmial.com</td>`) {
		t.Errorf("the learned table does not say which domains are trusted:\n%s", learned)
	}

	resp, _ := c.post(fmt.Sprintf("/policy/sender-allows/%d/delete", allow.ID), nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete sender allow: %d", resp.StatusCode)
	}
	if left, _ := e.st.ListSenderAllows(ctx); len(left) != 0 || e.reloads.Load() != 1 {
		t.Fatalf("after delete: %+v, reloads %d", left, e.reloads.Load())
	}
	evs := events(t, e.st, "sender-allow-deleted")
	if len(evs) != 1 || evs[0].Actor != "admin:alice" || !strings.Contains(evs[0].Detail, "alice@army.mil → j@gmial.com") {
		t.Fatalf("events %+v", evs)
	}
	if resp, _ := c.post(fmt.Sprintf("/policy/sender-allows/%d/delete", allow.ID), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleting it twice: %d", resp.StatusCode)
	}
}
