package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// docsRelay is docs/relay.md's "Five minutes" setup, read from the doc,
// its ports replaced by free ones.
type docsRelay struct {
	command, filter, master string // stray relay's arguments, content_filter, master.cf lines
	relayAddr               string
}

func docsRelaySetup(t *testing.T) docsRelay {
	t.Helper()
	doc, err := os.ReadFile("../docs/relay.md")
	if err != nil {
		t.Fatal(err)
	}
	section, ok := strings.CutPrefix(string(doc)[strings.Index(string(doc), "## Five minutes"):], "## Five minutes")
	if !ok {
		t.Fatal(`docs/relay.md has no "## Five minutes" section`)
	}
	section = section[:strings.Index(section, "\n## ")]
	relayPort, reinjectPort := postfixtest.FreePort(t), postfixtest.FreePort(t)
	ports := strings.NewReplacer("10025", strconv.Itoa(relayPort), "10027", strconv.Itoa(reinjectPort))
	find := func(what, re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(section)
		if m == nil {
			t.Fatalf("docs/relay.md's five minutes: no %s (%s)", what, re)
		}
		return ports.Replace(m[1])
	}
	d := docsRelay{
		command:   find("stray relay command", "(?m)^stray relay ([^#\n]*)"),
		filter:    find("content_filter", `postconf -e 'content_filter = ([^']*)'`),
		master:    find("master.cf lines", `(?s)cat >> /etc/postfix/master.cf <<'EOF'\n(.*?\n)EOF\n`),
		relayAddr: "127.0.0.1:" + strconv.Itoa(relayPort),
	}
	if !strings.Contains(d.command, "--protect example.com") || !strings.Contains(d.master, "127.0.0.1:"+strconv.Itoa(reinjectPort)) {
		t.Fatalf("the doc's setup changed; this test expects --protect example.com and the re-injection listener on 10027:\n%s\n%s", d.command, d.master)
	}
	return d
}

// startRelay runs the doc's stray relay command in dir, args before the
// doc's; the test's failure shows its log and Postfix's.
func (d docsRelay) startRelay(t *testing.T, pf *postfixtest.Postfix, dir string, args ...string) *relayProc {
	t.Helper()
	r := &relayProc{t: t, log: &syncBuffer{}, dir: dir, Addr: d.relayAddr,
		args: append(append([]string{"relay"}, args...), strings.Fields(d.command)...)}
	r.start()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("stray relay log:\n%s", r.log.String())
			t.Logf("Postfix log:\n%s", pf.Log())
		}
	})
	return r
}

// TestHoldAndReleaseThroughOnePostfixAsDocsRelayMdSays: the same setup
// with hold and confirm, its notifications and re-injections sent back
// into that Postfix (as the defaults do with Postfix on port 25), so that
// they pass stray again: the held recipient is not delivered, the sender's
// notification is, and after the release the recipient is delivered
// exactly once, nothing circling or left in the queue.
func TestHoldAndReleaseThroughOnePostfixAsDocsRelayMdSays(t *testing.T) {
	d := docsRelaySetup(t)
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{"content_filter": d.filter}, Master: d.master})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stray.yaml")
	writeFile(t, cfg, fmt.Sprintf(`store: sqlite:%s/stray.db
hold:
  secret_file: %s/stray.key
  base_url: http://127.0.0.1:1
  notify_smtp: %s
  notify_from: stray@example.com
  reinject_smtp: %s
  sweep: 2s
`, dir, dir, pf.SMTP, pf.SMTP))
	d.startRelay(t, pf, dir, "--config", cfg)

	if _, data, err := postfixtest.Send(pf.SMTP, "you@example.com", []string{"x@gmial.com", "colleague@example.com"}, "Subject: plans\n\nhi\n"); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	got := pf.Sink.WaitRecipients(2, 30*time.Second)
	if countRcpt(got, "colleague@example.com") != 1 || countRcpt(got, "you@example.com") != 1 || contains(got, "x@gmial.com") {
		t.Fatalf("delivered %v; want colleague@example.com and the notification to you@example.com, x@gmial.com held", got)
	}
	for _, m := range pf.Sink.Messages() {
		if m.To[0] == "you@example.com" && !strings.Contains(string(m.Data), "Did you mean x@gmail.com?") {
			t.Errorf("the notification does not carry the suggestion:\n%s", m.Data)
		}
	}
	id := onlyHeld(t, cfg)
	quarantine(t, cfg, "release", id)
	pf.Sink.WaitRecipients(3, 30*time.Second)
	time.Sleep(2 * time.Second) // a loop would deliver more by now
	got = pf.Sink.Recipients()
	if len(got) != 3 || countRcpt(got, "x@gmial.com") != 1 {
		t.Fatalf("after the release delivered %v; want x@gmial.com once more, nothing else", got)
	}
	if n := pf.Queued(); n != 0 {
		t.Errorf("%d messages left in Postfix's queue", n)
	}
	if list := quarantine(t, cfg, "list", "--format", "json", "--state", "released"); !strings.Contains(list, id) {
		t.Errorf("the message is not released: %s", list)
	}
}

// TestRelayInFrontOfOnePostfixAsDocsRelayMdSays follows docs/relay.md's
// "Five minutes" section with a real Postfix: the stray relay command, the
// content_filter setting and the master.cf re-injection listener are read
// from the doc (its ports replaced by free ones), so the setup a newcomer
// copies is the one CI runs. The good recipient is delivered once (mail
// does not circle through stray), and the typo comes back to the sender as
// a bounce with the relay's suggestion.
func TestRelayInFrontOfOnePostfixAsDocsRelayMdSays(t *testing.T) {
	d := docsRelaySetup(t)
	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{"content_filter": d.filter}, Master: d.master})
	// As documented: no --config, so the embedded defaults in a directory
	// of its own.
	r := d.startRelay(t, pf, t.TempDir())

	if _, data, err := postfixtest.Send(pf.SMTP, "you@example.com", []string{"b@examp1e.com", "colleague@example.com"}, "Subject: test\n\nhi\n"); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	pf.Sink.WaitRecipients(2, 30*time.Second)
	time.Sleep(2 * time.Second) // a loop would deliver more by now
	got := pf.Sink.Recipients()
	if len(got) != 2 || countRcpt(got, "colleague@example.com") != 1 || countRcpt(got, "you@example.com") != 1 {
		t.Fatalf("delivered %v; want colleague@example.com once and the bounce to you@example.com once", got)
	}
	for _, m := range pf.Sink.Messages() {
		if m.To[0] == "you@example.com" && !strings.Contains(string(m.Data), "did you mean b@example.com?") {
			t.Errorf("the bounce does not carry the suggestion:\n%s", m.Data)
		}
	}
	if n := strings.Count(r.log.String(), "msg=relayed"); n != 1 {
		t.Errorf("stray relayed %d messages, want 1 (the bounce does not pass it)", n)
	}
}
