package gate_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

type recorded struct {
	sender string
	ds     []gate.Delivery
}

type fakeRecorder struct {
	mu        sync.Mutex
	delivered []recorded
}

func (r *fakeRecorder) Delivered(sender string, ds []gate.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, recorded{sender, slices.Clone(ds)})
}
func (r *fakeRecorder) Flagged(string, string, gate.RcptResult) {}
func (r *fakeRecorder) Decided(detect.Verdict, policy.Action)   {}

// releaseAll releases its recipients, as released by the administrator
// olivia.
type releaseAll []string

func (r releaseAll) Released(context.Context, string) ([]string, string, bool) {
	return r, "admin:olivia", true
}

// The recorder learns from delivered recipients; it must know why each one
// passed, so that an allow rule or a release teaches nothing org-wide.
func TestDeliveredRecipientsSayWhyTheyPassed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rcpts   []string
		release []string
		want    []gate.Delivery
	}{
		{"a clean recipient", []string{"j@gmail.com"}, nil,
			[]gate.Delivery{{Recipient: "j@gmail.com", Passed: gate.PassedClean}}},
		{"an address on an allow rule", []string{"j@army.ml"}, nil,
			[]gate.Delivery{{Recipient: "j@army.ml", Passed: gate.PassedAllowed}}},
		{"a domain on an allow rule", []string{"x@partner.ml"}, nil,
			[]gate.Delivery{{Recipient: "x@partner.ml", Passed: gate.PassedAllowed}}},
		{"a recipient released as typed", []string{"k@army.ml"}, []string{"k@army.ml"},
			[]gate.Delivery{{Recipient: "k@army.ml", Passed: gate.PassedReleased, By: "admin:olivia"}}},
		{"a warned recipient teaches nothing", []string{"k@gmial.com"}, nil, nil},
		{"mixed", []string{"a@example.org", "j@army.ml"}, nil,
			[]gate.Delivery{{Recipient: "a@example.org", Passed: gate.PassedClean}, {Recipient: "j@army.ml", Passed: gate.PassedAllowed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &fakeRecorder{}
			opts := []gate.Option{gate.WithRecorder(rec)}
			if tt.release != nil {
				opts = append(opts, gate.WithReleases(releaseAll(tt.release)))
			}
			g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}},
				policy.Config{Allow: []string{"j@army.ml", "partner.ml"}, Actions: map[policy.VerdictName]policy.ActionName{"block": "hold", "hold": "warn"}}, opts...)
			s := g.NewSession("test", nil)
			s.Mail("<alice@army.mil>")
			for _, r := range tt.rcpts {
				s.Rcpt(r)
			}
			if tt.release != nil {
				s.Header(gate.ReleaseHeader, "signed")
			}
			s.End(context.Background())
			var got []gate.Delivery
			for _, d := range rec.delivered {
				if d.sender != "alice@army.mil" {
					t.Errorf("sender %q", d.sender)
				}
				got = append(got, d.ds...)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("delivered %+v, want %+v", got, tt.want)
			}
		})
	}
}
