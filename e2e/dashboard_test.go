package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/stray-mail/stray/internal/browsertest"
	"github.com/stray-mail/stray/internal/postfixtest"
)

// addUser creates a dashboard user with the stray binary, as an
// administrator would.
func addUser(t *testing.T, cfg, name, role, password string) {
	t.Helper()
	cmd := exec.Command(strayBin, "user", "add", name, "--role", role, "--password-stdin", "--config", cfg)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stray user add %s: %v\n%s", name, err, out)
	}
}

// login logs in through the login form and returns the status of the page
// it lands on.
func login(t *testing.T, b *browsertest.Browser, base, name, password string) int {
	t.Helper()
	b.Open(t, base+"/", "#login-form")
	b.Fill(t, "#name", name)
	b.Fill(t, "#password", password)
	return b.Submit(t, "#login-form")
}

// TestDashboardHandlesAHeldMessageEndToEndInABrowser drives the real
// dashboard of a real `stray serve` in Chromium: the message is held by
// the milter in front of a real Postfix, an administrator logs in, finds
// it and releases it, and it arrives at the sink once; an auditor cannot
// release, a forged CSRF token is refused, and no page breaks its CSP.
func TestDashboardHandlesAHeldMessageEndToEndInABrowser(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { dashboardEndToEnd(t, "") })
	// Several nodes share PostgreSQL: users, sessions and rules live there.
	t.Run("postgres", func(t *testing.T) { dashboardEndToEnd(t, postgresSchemaDSN(t)) })
}

func dashboardEndToEnd(t *testing.T, storeDSN string) {
	h := startHold(t, storeDSN)
	base := "http://" + h.s.HTTP
	addUser(t, h.s.cfg, "alice", "admin", "correct horse battery")
	addUser(t, h.s.cfg, "olivia", "auditor", "read only, thank you")

	rcpt, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com", "y@gmail.com"}, heldMsg)
	if err != nil || rcpt[0].Code != 250 || data.Code != 250 {
		t.Fatalf("send: %v %v %v", rcpt, data, err)
	}
	if got := h.pf.Sink.WaitRecipients(1, 20*time.Second); len(got) != 1 || got[0] != "y@gmail.com" {
		t.Fatalf("delivered now: %v", got)
	}
	id, _ := h.links(t, 1)

	b := browsertest.Start(t)
	// Anonymous: the dashboard sends us to the login page.
	b.Open(t, base+"/quarantine", "#login-form")
	if u := b.URL(t); !strings.HasPrefix(u, base+"/login?next=") {
		t.Fatalf("anonymous visit landed on %s", u)
	}
	b.Screenshot(t, "01-login")
	b.Fill(t, "#name", "alice")
	b.Fill(t, "#password", "wrong password")
	if code := b.Submit(t, "#login-form"); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	b.ClearMessages() // the 401 document load is reported, and expected
	if code := login(t, b, base, "alice", "correct horse battery"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	b.WaitVisible(t, "#tile-held")
	if !b.Exists(t, "html.js") {
		t.Fatal("the dashboard's script did not run")
	}
	if txt := b.Text(t, "#tile-held"); !strings.Contains(txt, "1") {
		t.Fatalf("held tile: %q", txt)
	}
	b.Screenshot(t, "02-overview")

	b.Open(t, base+"/quarantine", "#messages")
	if txt := b.Text(t, "#messages"); !strings.Contains(txt, "x@gmial.com") || !strings.Contains(txt, "x@gmail.com") {
		t.Fatalf("quarantine list: %q", txt)
	}
	if txt := b.Text(t, "#messages td.subject"); txt != "quarterly figures" {
		t.Errorf("quarantine list subject: %q", txt)
	}
	b.Screenshot(t, "03-quarantine")
	if code := b.ClickNavigate(t, fmt.Sprintf(`a[href="/quarantine/%s"]`, id)); code != 200 {
		t.Fatalf("message page: %d", code)
	}
	for _, want := range []string{"quarterly figures", "x@gmial.com", "Please find the figures below."} {
		if !strings.Contains(b.Text(t, "main"), want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	b.Screenshot(t, "04-message")

	// A forged CSRF token is refused and changes nothing.
	b.Forge(t, "#form-release", "csrf", "forged-token")
	if code := b.Submit(t, "#form-release"); code != 403 {
		t.Fatalf("forged CSRF token: %d", code)
	}
	b.ClearMessages()
	time.Sleep(time.Second)
	if countRcpt(h.pf.Sink.Recipients(), "x@gmial.com") != 0 {
		t.Fatal("released with a forged CSRF token")
	}

	// The real button releases: delivered once, through Postfix again.
	b.Open(t, base+"/quarantine/"+id, "#form-release")
	if code := b.ClickNavigate(t, "#release"); code != 200 {
		t.Fatalf("release: %d", code)
	}
	if txt := b.Text(t, "#flash"); !strings.Contains(txt, "released") {
		t.Fatalf("after release: %q", txt)
	}
	if txt := b.Text(t, "#state"); txt != "released" {
		t.Fatalf("state after release: %q", txt)
	}
	got := h.pf.Sink.WaitRecipients(2, 30*time.Second)
	if countRcpt(got, "x@gmial.com") != 1 {
		t.Fatalf("released recipient delivered %d times: %v", countRcpt(got, "x@gmial.com"), got)
	}
	if !strings.Contains(b.Text(t, "#history"), "admin:alice") {
		t.Error("the message's history does not name the administrator")
	}
	b.Screenshot(t, "05-released")
	b.Open(t, base+"/policy", "#rules")
	if txt := b.Text(t, "main"); !strings.Contains(txt, "block: reject") || strings.Contains(txt, "actions: {}") {
		t.Error("the effective configuration does not show the actions in force")
	}
	b.Screenshot(t, "06-policy")
	b.Open(t, base+"/events", "#events")
	if txt := b.Text(t, "#events"); !strings.Contains(txt, "login-failed") || !strings.Contains(txt, "csrf-refused") {
		t.Errorf("event log lacks the failed login or the refused CSRF token")
	}
	if !b.Exists(t, "#events dl.fields dt") {
		t.Error("the decision events' details are not shown as fields")
	}
	b.Screenshot(t, "07-events")
	// A saved audit is browsable.
	if out, err := exec.Command(strayBin, "audit", "--config", h.s.cfg, "--protect", "mil", "--save", "../internal/audit/testdata/golden/mail.log").CombinedOutput(); !strings.Contains(string(out), "saved as report") {
		t.Fatalf("stray audit --save: %v\n%s", err, out)
	}
	b.Open(t, base+"/reports", "#reports")
	if code := b.ClickNavigate(t, `#reports a`); code != 200 {
		t.Fatalf("report page: %d", code)
	}
	if txt := b.Text(t, "main"); !strings.Contains(txt, "army.ml") || !b.Exists(t, "#download") || b.Exists(t, "p.error") {
		t.Fatalf("report page: %q", txt)
	}
	b.Screenshot(t, "08-report")
	// The decisions of this test reach the overview's charts (the
	// recorder writes its counts every 10 s).
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.Open(t, base+"/", "#tile-checked")
		if !strings.HasPrefix(strings.TrimSpace(b.Text(t, "#tile-checked")), "0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the overview never counted a decision")
		}
		time.Sleep(time.Second)
	}
	if !b.Exists(t, "figure.chart svg rect") {
		t.Error("the overview draws no bars")
	}
	// The rankings are one table each, a bar per row, the count beside it.
	if !b.Exists(t, "table.ranking td.bar svg rect") || !b.Exists(t, "table.ranking td.n") {
		t.Error("the overview's rankings are not tables with bars")
	}
	b.Screenshot(t, "09-overview-counted")
	b.NoProblems(t)

	// Log out: the session is gone.
	if code := b.ClickNavigate(t, "#logout"); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	b.Open(t, base+"/", "#login-form")

	// A second held message; the auditor sees it and cannot release it.
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"z@gmial.com"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("send 2: %v %v", data, err)
	}
	id2, _ := h.links(t, 2)
	if code := login(t, b, base, "olivia", "read only, thank you"); code != 200 {
		t.Fatalf("auditor login: %d", code)
	}
	b.Open(t, base+"/quarantine/"+id2, "#readonly")
	if b.Exists(t, "#release") {
		t.Fatal("the auditor is shown a release button")
	}
	b.Screenshot(t, "10-auditor")
	// Even a hand-made form with the auditor's own valid token is refused.
	browsertest.Eval[bool](t, b, fmt.Sprintf(`(() => {
	const f = document.createElement("form");
	f.id = "handmade"; f.method = "post"; f.action = "/quarantine/%s/release";
	const c = document.createElement("input");
	c.type = "hidden"; c.name = "csrf"; c.value = document.querySelector('#logout').form.elements.csrf.value;
	f.appendChild(c); document.body.appendChild(f); return true;
})()`, id2))
	if code := b.Submit(t, "#handmade"); code != 403 {
		t.Fatalf("auditor release: %d", code)
	}
	if !strings.Contains(b.Text(t, "#error"), "may look but not change") {
		t.Errorf("auditor's refusal: %q", b.Text(t, "#error"))
	}
	b.ClearMessages()
	time.Sleep(time.Second)
	if countRcpt(h.pf.Sink.Recipients(), "z@gmial.com") != 0 {
		t.Fatal("the auditor released a message")
	}
	b.NoProblems(t)

	// Without JavaScript the core actions still work: a browser with
	// scripts off logs in and discards the message in bulk.
	nojs := browsertest.Start(t)
	if err := chromedp.Do(nojs.Context(), func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatal(err)
	}
	nojs.Open(t, base+"/login", "#login-form")
	if nojs.Exists(t, "html.js") {
		t.Fatal("scripts still run")
	}
	nojs.Fill(t, "#name", "alice")
	nojs.Fill(t, "#password", "correct horse battery")
	if code := nojs.ClickNavigate(t, "#login"); code != 200 {
		t.Fatalf("login without JavaScript: %d", code)
	}
	nojs.Open(t, base+"/quarantine", "#messages")
	nojs.Click(t, fmt.Sprintf(`input[name="id"][value="%s"]`, id2))
	if code := nojs.ClickNavigate(t, `#bulk button[value="discard"]`); code != 200 {
		t.Fatalf("bulk discard without JavaScript: %d", code)
	}
	if txt := nojs.Text(t, "#flash"); !strings.Contains(txt, "1 discarded") {
		t.Fatalf("after the bulk discard: %q", txt)
	}
	nojs.Screenshot(t, "11-no-javascript-bulk-discard")
	nojs.NoProblems(t)
}
