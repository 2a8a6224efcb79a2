package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/audit"
	"github.com/stray-mail/stray/internal/maillog"
	"github.com/stray-mail/stray/internal/postfixtest"
	"github.com/stray-mail/stray/internal/store"
	"github.com/stray-mail/stray/internal/web"
	"github.com/stray-mail/stray/internal/web/api"
)

func storeConfig(t *testing.T) (cfg, dsn string) {
	dir := t.TempDir()
	dsn = "sqlite:" + filepath.Join(dir, "s.db")
	cfg = filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: "+dsn+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, dsn
}

func openTestStore(t *testing.T, dsn string) store.Store {
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestUserAddPasswdListDelete(t *testing.T) {
	cfg, dsn := storeConfig(t)
	code, out, errOut := run(t, "", "user", "add", "alice", "--config", cfg)
	m := regexp.MustCompile(`^added alice \(admin\); password: (\S{20})\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(errOut, "only once") {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, "", "user", "add", "alice", "--config", cfg); code != ExitUsage || !strings.Contains(errOut, "exists") {
		t.Fatalf("add twice: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "short\n", "user", "add", "bob", "--role", "auditor", "--password-stdin", "--config", cfg); code != ExitUsage || !strings.Contains(errOut, "too short") {
		t.Fatalf("short password: %d %q", code, errOut)
	}
	if code, out, _ := run(t, "a long enough one\n", "user", "add", "bob", "--role", "auditor", "--password-stdin", "--config", cfg); code != 0 || out != "added bob (auditor)\n" {
		t.Fatalf("add bob: %d %q", code, out)
	}
	if code, _, errOut := run(t, "", "user", "add", "carol", "--role", "root", "--config", cfg); code != ExitUsage || !strings.Contains(errOut, "want admin or auditor") {
		t.Fatalf("bad role: %d %q", code, errOut)
	}
	st := openTestStore(t, dsn)
	u, err := st.GetUser(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := web.CheckPassword(u.Hash, m[1]); !ok {
		t.Fatal("the printed password does not match the stored hash")
	}
	// passwd keeps the role unless --role says otherwise.
	if code, _, _ := run(t, "another long password\n", "user", "passwd", "bob", "--password-stdin", "--config", cfg); code != 0 {
		t.Fatal("passwd failed")
	}
	b, _ := st.GetUser(context.Background(), "bob")
	if ok, _ := web.CheckPassword(b.Hash, "another long password"); !ok || b.Role != store.RoleAuditor {
		t.Fatalf("after passwd: role %s, password ok %v", b.Role, ok)
	}
	if code, out, _ := run(t, "", "user", "list", "--config", cfg); code != 0 || !strings.Contains(out, "alice  admin") || !strings.Contains(out, "bob    auditor") {
		t.Fatalf("list: %q", out)
	}
	if code, _, _ := run(t, "", "user", "delete", "bob", "--config", cfg); code != 0 {
		t.Fatal("delete failed")
	}
	if code, _, errOut := run(t, "", "user", "delete", "bob", "--config", cfg); code != ExitUsage || !strings.Contains(errOut, "no user") {
		t.Fatalf("delete twice: %d %q", code, errOut)
	}
	evs, _ := st.Events(context.Background(), store.EventFilter{})
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds["user-added"] != 2 || kinds["password-changed"] != 1 || kinds["user-deleted"] != 1 {
		t.Fatalf("events %v", kinds)
	}
}

func TestAuditSaveStoresTheReportForTheDashboard(t *testing.T) {
	cfg, dsn := storeConfig(t)
	code, _, errOut := run(t, "", "audit", "--protect", "mil", "--config", cfg, "--save", "../audit/testdata/golden/mail.log")
	if code != ExitFlagged || !strings.Contains(errOut, "saved as report 1") {
		t.Fatalf("audit --save: %d %q", code, errOut)
	}
	st := openTestStore(t, dsn)
	r, err := st.GetReport(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != "audit" || !strings.Contains(r.Title, "delivered recipients") || !strings.Contains(string(r.JSON), `"Leaks":`) || !strings.Contains(string(r.HTML), "<svg") {
		t.Fatalf("saved report: %s %q json %d html %d", r.Kind, r.Title, len(r.JSON), len(r.HTML))
	}
}

func TestTokenAddListRevoke(t *testing.T) {
	cfg, dsn := storeConfig(t)
	code, out, _ := run(t, "", "token", "add", "outlook add-in", "--config", cfg)
	id, secret, ok := api.ParseToken(strings.TrimSpace(out))
	if code != 0 || !ok {
		t.Fatalf("add: %d %q", code, out)
	}
	st := openTestStore(t, dsn)
	tok, err := st.GetToken(context.Background(), id)
	if err != nil || tok.Name != "outlook add-in" || tok.Hash != api.HashSecret(secret) || strings.Contains(tok.Hash, secret) {
		t.Fatalf("stored token %+v, %v", tok, err)
	}
	if code, out, _ := run(t, "", "token", "list", "--config", cfg); code != 0 || !strings.Contains(out, id) || strings.Contains(out, secret) {
		t.Fatalf("list: %q", out)
	}
	if code, _, _ := run(t, "", "token", "revoke", id, "--config", cfg); code != 0 {
		t.Fatal("revoke failed")
	}
	if _, err := st.GetToken(context.Background(), id); err == nil {
		t.Fatal("revoked token still stored")
	}
	if code, _, errOut := run(t, "", "token", "revoke", id, "--config", cfg); code != ExitUsage || !strings.Contains(errOut, "no token") {
		t.Fatalf("revoke twice: %d %q", code, errOut)
	}
}

func TestASavedAuditReadsBackWhole(t *testing.T) {
	cfg, dsn := storeConfig(t)
	run(t, "", "audit", "--protect", "mil", "--config", cfg, "--save", "../audit/testdata/golden/mail.log")
	r, err := openTestStore(t, dsn).GetReport(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(r.JSON, &rep); err != nil {
		t.Fatalf("the dashboard cannot read the saved audit: %v", err)
	}
	if rep.Leaks != 11 || rep.Delivered != 20 || len(rep.Domains) == 0 || rep.Attempts[maillog.Sent] == 0 || rep.ByVerdict[detect.Block] == 0 {
		t.Fatalf("read back: leaks %d of %d, %d domains, attempts %v, verdicts %v", rep.Leaks, rep.Delivered, len(rep.Domains), rep.Attempts, rep.ByVerdict)
	}
}

// Issue 12: a store that cannot be reached is a runtime failure (exit 3),
// not a usage error (2), for the daemons and for the commands that only
// open the store.
func TestAnUnreachableStoreExitsThree(t *testing.T) {
	t.Parallel()
	port := postfixtest.FreePort(t) // nothing listens there
	cfg := filepath.Join(t.TempDir(), "stray.yaml")
	body := fmt.Sprintf("store: postgres://stray@127.0.0.1:%d/test?connect_timeout=2\nlisten:\n  milter: \"\"\n  http: \"\"\n  policy: 127.0.0.1:%d\n", port, postfixtest.FreePort(t))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--config", cfg, "--postconf", "off"},
		{"user", "list", "--config", cfg},
		{"token", "list", "--config", cfg},
	} {
		if code, _, errOut := run(t, "", args...); code != ExitRuntime {
			t.Errorf("%v: exit %d (%s), want %d", args, code, strings.TrimSpace(errOut), ExitRuntime)
		}
	}
}
