package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// TestRelayInFrontOfOnePostfixAsDocsRelayMdSays follows docs/relay.md's
// "Five minutes" section with a real Postfix: the stray relay command, the
// content_filter setting and the master.cf re-injection listener are read
// from the doc (its ports replaced by free ones), so the setup a newcomer
// copies is the one CI runs. The good recipient is delivered once (mail
// does not circle through stray), and the typo comes back to the sender as
// a bounce with the relay's suggestion.
func TestRelayInFrontOfOnePostfixAsDocsRelayMdSays(t *testing.T) {
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
	command := find("stray relay command", "(?m)^stray relay ([^#\n]*)")
	filter := find("content_filter", `postconf -e 'content_filter = ([^']*)'`)
	master := find("master.cf lines", `(?s)cat >> /etc/postfix/master.cf <<'EOF'\n(.*?\n)EOF\n`)
	if !strings.Contains(command, "--protect example.com") || !strings.Contains(master, "127.0.0.1:"+strconv.Itoa(reinjectPort)) {
		t.Fatalf("the doc's setup changed; this test expects --protect example.com and the re-injection listener on 10027:\n%s\n%s", command, master)
	}

	pf := postfixtest.Start(t, postfixtest.Options{Extra: map[string]string{"content_filter": filter}, Master: master})
	// As documented: no --config, so the embedded defaults in a directory
	// of its own.
	r := &relayProc{t: t, log: &syncBuffer{}, dir: t.TempDir(), Addr: "127.0.0.1:" + strconv.Itoa(relayPort),
		args: append([]string{"relay"}, strings.Fields(command)...)}
	r.start()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("stray relay log:\n%s", r.log.String())
			t.Logf("Postfix log:\n%s", pf.Log())
		}
	})

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
