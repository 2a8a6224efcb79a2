package api

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stray-mail/stray/internal/store"
)

// TestTokensFromTheRealStore: a token made by NewToken and kept by the
// embedded SQLite store authenticates; a deleted or unknown one does not.
func TestTokensFromTheRealStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "stray.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	plain, tok, err := NewToken("outlook add-in", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutToken(ctx, &tok); err != nil {
		t.Fatalf("the store refuses NewToken's token: %v", err)
	}
	fx := newFixture(t, func(c *Config) { c.Tokens = st; c.TokenCacheTTL = -1 })
	fx.token = plain
	body := `{"recipients":["b@army.ml"]}`
	if w := fx.check(body); w.Code != 200 {
		t.Fatalf("stored token: %d %s", w.Code, w.Body)
	}
	if w := fx.check(body, "Authorization", "Bearer "+lastChanged(plain)); w.Code != 401 {
		t.Errorf("wrong secret: %d", w.Code)
	}
	if w := fx.check(body, "Authorization", "Bearer stray_00000000_"+plain[len(plain)-52:]); w.Code != 401 {
		t.Errorf("unknown id: %d", w.Code)
	}
	if err := st.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if w := fx.check(body); w.Code != 401 {
		t.Errorf("deleted token: %d %s", w.Code, w.Body)
	}
}
