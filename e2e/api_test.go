package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/stray-mail/stray/internal/browsertest"
)

// startAPI runs stray serve with a store and returns it and a fresh token.
func startAPI(t *testing.T) (*stray, string) {
	t.Helper()
	dir := t.TempDir()
	s := startStray(t, fmt.Sprintf("detect:\n  protect: [mil]\nstore: sqlite:%s/stray.db\nhold:\n  secret_file: %s/stray.key\n", dir, dir))
	out, err := exec.Command(strayBin, "token", "add", "e2e", "--config", s.cfg).Output()
	if err != nil {
		t.Fatalf("stray token add: %v", err)
	}
	return s, strings.TrimSpace(string(out))
}

func TestCheckAPIAnswersLikeStrayCheckAndRefusesBadTokens(t *testing.T) {
	s, token := startAPI(t)
	check := func(tok string, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", "http://"+s.HTTP+"/api/v1/check", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := check(token, `{"sender":"a@army.mil","recipients":["j.smith@army.ml","ok@gmail.com","not an address"]}`)
	if code != 200 {
		t.Fatalf("check: %d %v", code, m)
	}
	results := m["results"].([]any)
	want, err := exec.Command(strayBin, "check", "--protect", "mil", "--format", "json", "j.smith@army.ml", "ok@gmail.com").Output()
	if err == nil || len(results) != 3 {
		t.Fatalf("stray check: %v; %d results", err, len(results))
	}
	for i, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		var cli map[string]any
		json.Unmarshal([]byte(line), &cli)
		got := results[i].(map[string]any)
		for _, k := range []string{"address", "verdict", "intended", "suggestion", "score"} {
			if fmt.Sprint(got[k]) != fmt.Sprint(cli[k]) {
				t.Errorf("result %d %s: API %v, stray check %v", i, k, got[k], cli[k])
			}
		}
	}
	if r := results[0].(map[string]any); r["action"] != "reject" || r["suggestion"] != "j.smith@army.mil" {
		t.Errorf("army.ml: %v", r)
	}
	if r := results[2].(map[string]any); r["error"] == nil || r["verdict"] != "invalid" { // issue 11: never ok
		t.Errorf("unparsable: %v", r)
	}
	for _, bad := range []string{"", "stray_abcdefgh_" + strings.Repeat("x", 52), token + "x"} {
		if code, _ := check(bad, `{"recipients":["a@b.com"]}`); code != 401 {
			t.Errorf("token %.20q: %d, want 401", bad, code)
		}
	}
	// A revoked token stops working (after the verification cache, 30s,
	// on a running daemon; a restarted one refuses it at once).
	id := strings.Split(token, "_")[1]
	if out, err := exec.Command(strayBin, "token", "revoke", id, "--config", s.cfg).CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v %s", err, out)
	}
	s.stop()
	s.start()
	if code, _ := check(token, `{"recipients":["a@b.com"]}`); code != 401 {
		t.Errorf("revoked token: %d", code)
	}
}

// TestComposeSnippetSuggestsInABrowser drives the demo compose page: the
// dependency-free snippet asks the API while the user types and offers the
// suggestion, which replaces the typo in one click.
func TestComposeSnippetSuggestsInABrowser(t *testing.T) {
	s, token := startAPI(t)
	b := browsertest.Start(t)
	b.Open(t, "http://"+s.HTTP+"/api/v1/demo", "#stray-demo-token")
	b.Fill(t, "#stray-demo-token", token)
	b.Fill(t, "#to", "j.smith@army.ml, ok@gmail.com")
	b.Click(t, "#subject") // leaving the field checks it
	b.WaitVisible(t, `.stray-check-item[data-address="j.smith@army.ml"]`)
	if txt := b.Text(t, "#to-stray"); !strings.Contains(txt, "j.smith@army.mil") || !strings.Contains(txt, "refused") {
		t.Fatalf("suggestion box: %q", txt)
	}
	b.Screenshot(t, "api-demo-suggestion")
	b.Click(t, `.stray-check-item[data-address="j.smith@army.ml"] .stray-check-fix`)
	if v := b.Value(t, "#to"); !strings.Contains(v, "j.smith@army.mil") || strings.Contains(v, "army.ml,") || !strings.Contains(v, "ok@gmail.com") {
		t.Fatalf("To after the fix: %q", v)
	}
	b.NoProblems(t)
}
