package relay

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/store"
)

func TestSinkRefusesEveryRecipientWithTheAddressMeantAndRecordsOnlyMetadata(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "stray.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	s := NewSink(map[string]string{"army.ml": "army.mil", "gmial-company.com": "gmail-company.com", "parked.example": ""}, st, slog.New(slog.DiscardHandler), reg)
	addr := gatetest.Serve(t, s)
	tests := []struct {
		rcpt string
		code int
		want string
	}{
		{"x@army.ml", 550, "5.1.2 <x@army.ml>: you probably meant x@army.mil"},
		{"Boss@ARMY.ML", 550, "5.1.2 <Boss@ARMY.ML>: you probably meant Boss@army.mil"},
		{"j@gmial-company.com", 550, "you probably meant j@gmail-company.com"},
		{"k@parked.example", 550, "5.1.2 <k@parked.example>: parked.example is not in use"},
		{"someone@example.org", 550, "5.7.1 this server accepts no mail"},
	}
	c := dial(t, addr)
	cmd(t, c, 250, "MAIL FROM:<general@army.mil>")
	for _, tc := range tests {
		r := cmd(t, c, tc.code, "RCPT TO:<%s>", tc.rcpt)
		if !strings.Contains(r.Text, tc.want) {
			t.Errorf("RCPT %s: %q, want %q", tc.rcpt, r.Text, tc.want)
		}
	}
	if r, _ := c.Cmd("DATA"); r.Code/100 != 5 {
		t.Errorf("DATA without recipients: %q", r.Text)
	}
	c.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(context.Background(), store.EventFilter{Kind: SinkEventKind})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("%d sink events, want 4 (one per lookalike recipient): %+v", len(evs), evs)
	}
	for _, e := range evs {
		for _, want := range []string{`"client":"127.0.0.1"`, `"sender":"general@army.mil"`, `"recipient":`, `"intended":`} {
			if !strings.Contains(e.Detail, want) {
				t.Errorf("event %q lacks %s", e.Detail, want)
			}
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "stray_sink_refused_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["lookalike"] != 4 || counts["other"] != 1 {
		t.Errorf("stray_sink_refused_total = %v, want lookalike 4, other 1", counts)
	}
}

// A session that outlives Shutdown (its deadline passed, go-smtp closed the
// connection but the handler was still running) refuses its recipient as
// before; its event is dropped, not sent on the closed queue, which
// panicked and took the daemon down while it was stopping.
func TestSinkSessionAfterShutdownDoesNotPanic(t *testing.T) {
	t.Parallel()
	s := NewSink(map[string]string{"army.ml": "army.mil"}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	s.init()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	x := &sinkSession{s: s, client: "127.0.0.1"}
	err := x.Rcpt("x@army.ml", nil)
	if err == nil || !strings.Contains(err.Error(), "you probably meant x@army.mil") {
		t.Fatalf("Rcpt after Shutdown: %v", err)
	}
}
