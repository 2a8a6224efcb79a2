package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

func trustDaemon(t *testing.T) *EngineBuilder {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &EngineBuilder{Store: st, Knowledge: Knowledge{Protect: []string{"mil"}}, Log: slog.New(slog.DiscardHandler)}
}

// One "Send as typed" to gmial.com must not make it a trusted
// correspondent for everyone: learned trust needs several senders on
// several days (3 and 2 by default).
func TestLearnedDomainIsTrustedOnlyWithSeveralSendersOnSeveralDays(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	type delivery struct {
		sender string
		at     time.Time
	}
	tests := []struct {
		name       string
		deliveries []delivery
		learn      config.Learn
		want       detect.Verdict
	}{
		{"one sender once", []delivery{{"a@army.mil", day}}, config.Learn{}, detect.Hold},
		{"one sender every day", []delivery{{"a@army.mil", day}, {"a@army.mil", day.Add(24 * time.Hour)}, {"a@army.mil", day.Add(48 * time.Hour)}}, config.Learn{}, detect.Hold},
		{"three senders on one day", []delivery{{"a@army.mil", day}, {"b@army.mil", day}, {"c@army.mil", day}}, config.Learn{}, detect.Hold},
		{"three senders on two days", []delivery{{"a@army.mil", day}, {"b@army.mil", day}, {"c@army.mil", day.Add(24 * time.Hour)}}, config.Learn{}, detect.OK},
		{"one sender once, thresholds lowered", []delivery{{"a@army.mil", day}}, config.Learn{MinSenders: 1, MinDays: 1}, detect.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := trustDaemon(t)
			for _, dl := range tt.deliveries {
				if err := d.Store.AddDeliveries(context.Background(), dl.sender, []string{"gmial.com"}, dl.at); err != nil {
					t.Fatal(err)
				}
			}
			cfg := config.Default()
			if tt.learn != (config.Learn{}) {
				cfg.Detect.Learn = tt.learn
			}
			eng, _, err := d.Build(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			f, err := eng.Checker.Check("j@gmial.com")
			if err != nil {
				t.Fatal(err)
			}
			if f.Verdict != tt.want {
				t.Errorf("j@gmial.com: %s (%v), want %s", f.Verdict, f.Reasons, tt.want)
			}
		})
	}
}

func TestReleaseAsTypedAllowsThatAddressForThatSenderOnly(t *testing.T) {
	t.Parallel()
	d := trustDaemon(t)
	ctx := context.Background()
	for _, a := range []store.SenderAllow{{Sender: "alice@army.mil", Recipient: "j@gmial.com", CreatedBy: "release"},
		{Sender: "alice@army.mil", Recipient: "not-an-address", CreatedBy: "release"}} { // a bad row is skipped
		if err := d.Store.AddSenderAllow(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	eng, _, err := d.Build(ctx, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sender, rcpt string
		want         policy.Action
	}{
		{"alice@army.mil", "j@gmial.com", policy.Pass},
		{"bob@army.mil", "j@gmial.com", policy.Hold},
		{"alice@army.mil", "k@gmial.com", policy.Hold},
	}
	for _, tt := range tests {
		f, err := eng.Checker.Check(tt.rcpt)
		if err != nil {
			t.Fatal(err)
		}
		if got := eng.Policy.Decide(tt.sender, f).Action; got != tt.want {
			t.Errorf("%s → %s: %s, want %s", tt.sender, tt.rcpt, got, tt.want)
		}
	}
}
