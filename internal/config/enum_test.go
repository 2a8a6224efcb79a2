package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 12: on_expiry and on_store_error were free strings that only
// Validate looked at; they are typed values that refuse anything else as
// they are decoded, and the code compares constants, not spellings.
func TestHoldEnumsDecodeToConstantsAndRefuseOtherWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		expiry     OnExpiry
		storeError OnStoreError
		wantErr    string
	}{
		{"defaults", "", ExpiryDiscard, StoreErrorTempfail, ""},
		{"release and quarantine", "hold:\n  on_expiry: release\n  on_store_error: quarantine\n", ExpiryRelease, StoreErrorQuarantine, ""},
		{"unknown expiry", "hold:\n  on_expiry: deliver\n", "", "", `on_expiry: "deliver": want discard or release`},
		{"unknown store error", "hold:\n  on_store_error: accept\n", "", "", `on_store_error: "accept": want tempfail or quarantine`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(strings.NewReader(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Hold.OnExpiry != tt.expiry || c.Hold.OnStoreError != tt.storeError {
				t.Errorf("on_expiry %q on_store_error %q, want %q %q", c.Hold.OnExpiry, c.Hold.OnStoreError, tt.expiry, tt.storeError)
			}
		})
	}
}

// Issue 12: every choice in the config is a typed value that refuses an
// unknown word as it is decoded, with its field path and the words it
// takes, and all such words are reported at once.
func TestEveryEnumRefusesAnUnknownWordWithItsPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ yaml, want string }{
		{"policy:\n  mode: loud\n", `policy.mode: "loud": want enforce or audit`},
		{"policy:\n  actions: {block: explode}\n", `policy.actions.block: unknown action "explode" (want one of pass, log, warn, hold, tempfail, reject)`},
		{"policy:\n  actions: {ok: reject}\n", `policy.actions: "ok": want a verdict warn, hold or block`},
		{"policy:\n  address_literals: bounce\n", `policy.address_literals: unknown action "bounce"`},
		{"policy:\n  scopes:\n    - senders: [a.example]\n    - senders: [b.example]\n      actions: {hold: drop}\n", `policy.scopes[1].actions.hold: unknown action "drop"`},
		{"relay:\n  next_hop_tls: maybe\n", `relay.next_hop_tls: "maybe": want none, opportunistic or required`},
		{"log:\n  level: loud\n", `log.level: "loud": want debug, info, warn or error`},
		{"log:\n  format: xml\n", `log.format: "xml": want text or json`},
		{"hold:\n  on_expiry: deliver\n", `hold.on_expiry: "deliver": want discard or release`},
		{"hold:\n  on_store_error: accept\n", `hold.on_store_error: "accept": want tempfail or quarantine`},
		{"hold:\n  expire: 3 days\n", `hold.expire: time: unknown unit " days" in duration "3 days"`},
		{"defaults: &d {level: loud}\nlog: *d\n", "log.level"}, // through an alias: the key is found, not the anchor's place
	}
	for _, tt := range tests {
		_, err := Parse(strings.NewReader(tt.yaml))
		var p Problems
		if !errors.As(err, &p) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want problems containing %q", tt.yaml, err, tt.want)
		}
	}
}

func TestEnumProblemsComeWithTheOtherProblems(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	body := "detect:\n  protect: ['bad domain']\npolicy:\n  mode: loud\n  actions: {block: explode, hold: warn}\nlog:\n  level: loud\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("Load: %v, want problems", err)
	}
	for _, want := range []string{"detect.protect[0]", "policy.mode", "policy.actions.block", "log.level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems %q lack %s", p, want)
		}
	}
	if len(p) != 4 {
		t.Errorf("%d problems, want 4 (one per mistake, none twice): %q", len(p), p)
	}
}

// Values set in code (the relay's command-line flags) are not decoded:
// Validate checks them with the same words.
func TestValidateChecksEnumsSetInCode(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Relay.NextHopTLS = "maybe"
	c.Log.Level = "loud"
	err := c.Validate()
	for _, want := range []string{`relay.next_hop_tls: "maybe"`, `log.level: "loud"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %s", err, want)
		}
	}
}
