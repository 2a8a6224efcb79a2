package config

import (
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
