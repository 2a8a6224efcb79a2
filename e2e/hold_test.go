package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// holdSetup is stray with hold and confirm in front of a real Postfix:
// notifications go to their own sink, released mail back into Postfix.
type holdSetup struct {
	s      *stray
	pf     *postfixtest.Postfix
	notify *postfixtest.Sink
	dir    string
}

func holdConfig(dir, storeDSN string, notify *postfixtest.Sink, smtpPort int, httpAddr string) string {
	return fmt.Sprintf(`store: %s
hold:
  secret_file: %s/stray.key
  base_url: http://%s
  notify_smtp: %s
  notify_from: stray@example.org
  reinject_smtp: 127.0.0.1:%d
  node: %s
  sweep: 2s
`, storeDSN, dir, httpAddr, notify.Addr, smtpPort, httpAddr)
}

func startHold(t *testing.T, storeDSN string, extraEnv ...string) *holdSetup {
	t.Helper()
	return startHoldWith(t, storeDSN, "", extraEnv...)
}

// startHoldWith is startHold with extra YAML appended to the hold section.
func startHoldWith(t *testing.T, storeDSN, extraHold string, extraEnv ...string) *holdSetup {
	t.Helper()
	postfixtest.Require(t)
	h := &holdSetup{dir: t.TempDir(), notify: postfixtest.StartSink(t)}
	smtpPort := postfixtest.FreePort(t)
	if storeDSN == "" {
		storeDSN = "sqlite:" + h.dir + "/stray.db"
	}
	h.s = startStrayEnv(t, extraEnv, func(s *stray) string {
		return holdConfig(h.dir, storeDSN, h.notify, smtpPort, s.HTTP) + extraHold
	})
	h.pf = postfixtest.Start(t, postfixtest.Options{Milter: h.s.MilterSpec(), SMTPPort: smtpPort})
	return h
}

var linkRE = regexp.MustCompile(`http://[^\s]+/h/([0-9a-f]+)/(release|cancel|fix)\?e=\d+&s=[0-9a-f]+`)

// links waits for the n-th notification and returns its links by action.
func (h *holdSetup) links(t *testing.T, n int) (id string, links map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if msgs := h.notify.Messages(); len(msgs) >= n {
			body := string(msgs[n-1].Data)
			links = map[string]string{}
			for _, m := range linkRE.FindAllStringSubmatch(body, -1) {
				id, links[m[2]] = m[1], m[0]
			}
			if len(links) != 3 {
				t.Fatalf("notification lacks its three links:\n%s", body)
			}
			return id, links
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no notification %d arrived", n)
	return "", nil
}

func get(t *testing.T, link string) (int, string) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post submits the confirmation form a link's page shows.
func post(t *testing.T, link string) (int, string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	u.RawQuery = ""
	resp, err := http.PostForm(u.String(), url.Values{"e": {q.Get("e")}, "s": {q.Get("s")}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func countRcpt(rcpts []string, want string) int {
	n := 0
	for _, r := range rcpts {
		if strings.EqualFold(r, want) {
			n++
		}
	}
	return n
}

const heldMsg = "From: alice@example.org\nTo: x@gmial.com, y@gmail.com\nSubject: quarterly figures\n\nPlease find the figures below.\n.leading dot line\n"

func TestHoldAndConfirmDeliversOnceWhenTheSenderConfirmsAndCancelDiscards(t *testing.T) {
	h := startHold(t, "")
	rcpt, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com", "y@gmail.com"}, heldMsg)
	if err != nil || rcpt[0].Code != 250 || rcpt[1].Code != 250 || data.Code != 250 {
		t.Fatalf("send: %v %v %v", rcpt, data, err)
	}
	// The good recipient gets it now; the held one does not.
	if got := h.pf.Sink.WaitRecipients(1, 20*time.Second); len(got) != 1 || got[0] != "y@gmail.com" {
		t.Fatalf("delivered now: %v", got)
	}
	id, links := h.links(t, 1)
	note := string(h.notify.Messages()[0].Data)
	for _, want := range []string{"x@gmial.com looks like a typo of gmail.com", "Did you mean x@gmail.com?", "quarterly figures"} {
		if !strings.Contains(note, want) {
			t.Errorf("notification lacks %q:\n%s", want, note)
		}
	}
	if h.notify.Messages()[0].To[0] != "alice@example.org" {
		t.Errorf("notification went to %v", h.notify.Messages()[0].To)
	}
	// GET (what a link scanner does) shows the page and does nothing.
	code, page := get(t, links["release"])
	if code != 200 || !strings.Contains(page, "<form method=\"post\"") || !strings.Contains(page, "x@gmial.com") {
		t.Fatalf("GET release: %d\n%s", code, page)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(h.pf.Sink.Recipients()); n != 1 {
		t.Fatalf("a GET released the message: %v", h.pf.Sink.Recipients())
	}
	// A tampered link is refused.
	if code, _ := get(t, strings.Replace(links["release"], "&s=", "&s=00", 1)); code != 403 {
		t.Errorf("tampered link: %d", code)
	}
	if code, _ := post(t, strings.Replace(links["release"], "/release?", "/cancel?", 1)); code != 403 {
		t.Errorf("release signature used for cancel: %d", code)
	}
	// POST releases: delivered once, through Postfix and stray again.
	code, page = post(t, links["release"])
	if code != 200 || !strings.Contains(page, "has been sent") {
		t.Fatalf("POST release: %d\n%s", code, page)
	}
	got := h.pf.Sink.WaitRecipients(2, 30*time.Second)
	if countRcpt(got, "x@gmial.com") != 1 {
		t.Fatalf("released recipient delivered %d times: %v", countRcpt(got, "x@gmial.com"), got)
	}
	released := h.pf.Sink.Messages()[1]
	if !strings.Contains(string(released.Data), "Please find the figures below.") || !strings.Contains(string(released.Data), "\r\n..leading dot line") && !strings.Contains(string(released.Data), ".leading dot line") {
		t.Errorf("released content differs:\n%s", released.Data)
	}
	// Answering twice does nothing more.
	if _, page := post(t, links["release"]); !strings.Contains(page, "no longer waiting") {
		t.Errorf("second POST: %s", page)
	}
	if _, page := post(t, links["cancel"]); !strings.Contains(page, "no longer waiting") {
		t.Errorf("cancel after release: %s", page)
	}

	// A second message, cancelled: never delivered.
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"z@gmial.com"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("send 2: %v %v", data, err)
	}
	id2, links2 := h.links(t, 2)
	if code, page := post(t, links2["cancel"]); code != 200 || !strings.Contains(page, "discarded") {
		t.Fatalf("cancel: %d %s", code, page)
	}
	time.Sleep(time.Second)
	if countRcpt(h.pf.Sink.Recipients(), "z@gmial.com") != 0 {
		t.Fatal("a cancelled message was delivered")
	}

	// The event log has every step, with who did it.
	h.s.stop() // the store is one process's SQLite file
	out := quarantine(t, h.s.cfg, "show", "--format", "json", id)
	for _, kind := range []string{`"held"`, `"notified"`, `"releasing"`, `"released"`, `sender:127.0.0.1`} {
		if !strings.Contains(out, kind) {
			t.Errorf("events of %s lack %s:\n%s", id, kind, out)
		}
	}
	if out := quarantine(t, h.s.cfg, "list", "--state", "all", "--format", "json"); strings.Count(out, "\n") != 2 || !strings.Contains(out, id2) || !strings.Contains(out, `"discarded"`) {
		t.Errorf("list: %s", out)
	}
}

func quarantine(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	cmd := exec.Command(strayBin, append([]string{"quarantine", "--config", cfg}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stray quarantine %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// onlyHeld returns the id of the one message held in cfg's store.
func onlyHeld(t *testing.T, cfg string) string {
	t.Helper()
	list := quarantine(t, cfg, "list", "--format", "json")
	id := ""
	if i := strings.Index(list, `"id":"`); i >= 0 {
		id = list[i+6 : i+6+strings.IndexByte(list[i+6:], '"')]
	}
	if id == "" || strings.Count(list, "\n") != 1 {
		t.Fatalf("held messages: %s", list)
	}
	return id
}

// TestHoldLosesNothingWhenStrayIsKilledAtEachStep kills stray with SIGKILL
// at each step between accepting a message and notifying its sender:
// before storing and after storing (Postfix tempfails, the client retries
// once stray is back, the message is held once — the retry maps to the same
// id — and released once), and after answering but before notifying (the
// message is held and the sweep sends the notification after a restart).
func TestHoldLosesNothingWhenStrayIsKilledAtEachStep(t *testing.T) {
	for _, step := range []string{"before-hold", "after-hold", "before-notify"} {
		t.Run(step, func(t *testing.T) { holdCrash(t, step) })
	}
}

func holdCrash(t *testing.T, step string) {
	h := startHold(t, "", "STRAY_TEST_CRASH_AT="+step)
	rcpt, data, _ := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com", "y@gmail.com"}, heldMsg)
	h.s.cmd.Wait()
	h.s.cmd = nil
	h.s.env = nil
	if step == "before-notify" {
		// Postfix had its answer: the good recipient is delivered, the
		// held one waits in the store, unnotified until the sweep.
		if data.Code != 250 {
			t.Fatalf("end of data %v %v, want 250", rcpt, data)
		}
		h.s.start()
	} else {
		if data.Code/100 != 4 {
			t.Fatalf("killed %s: end of data %v, want 4xx", step, data)
		}
		if len(h.pf.Sink.Recipients()) != 0 {
			t.Fatalf("delivered while tempfailed: %v", h.pf.Sink.Recipients())
		}
		h.s.start()
		rcpt, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com", "y@gmail.com"}, heldMsg)
		if err != nil || data.Code != 250 {
			t.Fatalf("retry: %v %v %v", rcpt, data, err)
		}
	}
	_, links := h.links(t, 1)
	if code, _ := post(t, links["release"]); code != 200 {
		t.Fatalf("release: %d", code)
	}
	got := h.pf.Sink.WaitRecipients(2, 30*time.Second)
	if countRcpt(got, "x@gmial.com") != 1 || countRcpt(got, "y@gmail.com") != 1 {
		t.Fatalf("delivered %v, want each once", got)
	}
	h.s.stop()
	if out := quarantine(t, h.s.cfg, "list", "--state", "all", "--format", "json"); strings.Count(out, "\n") != 1 {
		t.Errorf("the retried message was held more than once:\n%s", out)
	}
}

// TestTwoNodesOnOnePostgresReleaseExactlyOnce: node A holds, node B serves
// the link; both are asked to release at the same time.
func TestTwoNodesOnOnePostgresReleaseExactlyOnce(t *testing.T) {
	dsn := postgresSchemaDSN(t)
	h := startHold(t, dsn)
	// Node B: same store and key, its own listeners, no MTA in front.
	b := startStrayEnv(t, nil, func(s *stray) string {
		return holdConfig(h.dir, dsn, h.notify, portOf(h.pf.SMTP), s.HTTP)
	})
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	_, links := h.links(t, 1)
	onB := strings.Replace(links["release"], h.s.HTTP, b.HTTP, 1)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, l := range []string{links["release"], onB} {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i], _ = post(t, l) }()
	}
	wg.Wait()
	got := h.pf.Sink.WaitRecipients(1, 30*time.Second)
	time.Sleep(2 * time.Second) // a second delivery would arrive by now
	if n := countRcpt(h.pf.Sink.Recipients(), "x@gmial.com"); n != 1 {
		t.Fatalf("delivered %d times (%v), codes %v", n, got, codes)
	}
}

func portOf(addr string) int {
	var p int
	fmt.Sscan(addr[strings.LastIndexByte(addr, ':')+1:], &p)
	return p
}

// postgresSchemaDSN makes a fresh schema on the test PostgreSQL and returns
// a DSN using it; CI sets STRAY_REQUIRE_POSTGRES so this cannot skip there.
func postgresSchemaDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("STRAY_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := fmt.Sprintf("stray_e2e_%d", time.Now().UnixNano())
	if out, err := exec.Command("psql", base, "-c", "CREATE SCHEMA "+schema).CombinedOutput(); err != nil {
		if os.Getenv("STRAY_REQUIRE_POSTGRES") != "" {
			t.Fatalf("postgres required: %v %s", err, out)
		}
		t.Skipf("no postgres: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("psql", base, "-c", "DROP SCHEMA "+schema+" CASCADE").Run() })
	return base + "&search_path=" + schema
}

// tcpProxy forwards a loopback port to another; cut() drops every
// connection and refuses new ones until resume().
type tcpProxy struct {
	t      *testing.T
	target string
	l      net.Listener
	addr   string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	p.resume()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) resume() {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.l, p.addr = l, l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *tcpProxy) cut() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// TestPostgresDownTempfailsHeldMailAndNeverAcceptsWhatItCannotStore: with
// the store unreachable a message that needs holding is refused with 4xx
// (clean mail still flows); when the store is back, the retry is held.
func TestPostgresDownTempfailsHeldMailAndNeverAcceptsWhatItCannotStore(t *testing.T) {
	dsn := postgresSchemaDSN(t)
	proxy := startProxy(t, "127.0.0.1:5432")
	h := startHold(t, strings.Replace(dsn, "127.0.0.1:5432", proxy.addr, 1))
	proxy.cut()
	_, data, _ := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com", "y@gmail.com"}, heldMsg)
	if data.Code/100 != 4 {
		t.Fatalf("store down: end of data %v, want 4xx", data)
	}
	// Clean mail needs no store.
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"z@gmail.com"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("clean mail with the store down: %v %v", data, err)
	}
	proxy.resume()
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com", "y@gmail.com"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("retry with the store back: %v %v", data, err)
	}
	h.links(t, 1)
	got := h.pf.Sink.WaitRecipients(2, 20*time.Second)
	if countRcpt(got, "y@gmail.com") != 1 || countRcpt(got, "z@gmail.com") != 1 || countRcpt(got, "x@gmial.com") != 0 {
		t.Fatalf("delivered %v", got)
	}
}

// TestLearnsCorrespondentsFromTrafficSoAFirstTimeSlipIsHeld: a domain the
// organisation delivers to is learned in the store; after the knowledge is
// rebuilt (SIGHUP here, every 10 minutes on its own), a first-time domain
// one slip from it is held, where before it passed. "Before" is asked of
// the daemon's policy listener, which decides without delivering anything.
// Learning needs evidence (3 senders; the days are lowered to 1 here, a
// test lasts less than one).
func TestLearnsCorrespondentsFromTrafficSoAFirstTimeSlipIsHeld(t *testing.T) {
	h := startHoldWith(t, "", "detect:\n  learn:\n    min_days: 1\n")
	policyAnswer := func(rcpt string) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", h.s.Policy, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=%d\nsender=alice@example.org\nrecipient=%s\n\n", time.Now().UnixNano(), rcpt)
		b := make([]byte, 512)
		n, _ := c.Read(b)
		return string(b[:n])
	}
	if got := policyAnswer("a@ewstlandhigh.school.nz"); !strings.HasPrefix(got, "action=DUNNO") {
		t.Fatalf("before learning: %q, want DUNNO", got)
	}
	for i, to := range []string{"b@westlandhigh.school.nz", "c@westlandhigh.school.nz", "d@westlandhigh.school.nz"} {
		from := []string{"alice@example.org", "bob@example.org", "carol@example.org"}[i]
		if _, data, err := postfixtest.Send(h.pf.SMTP, from, []string{to}, heldMsg); err != nil || data.Code != 250 {
			t.Fatalf("send to %s: %v %v", to, data, err)
		}
	}
	if got := h.pf.Sink.WaitRecipients(3, 20*time.Second); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	time.Sleep(500 * time.Millisecond) // the recorder writes in the background
	h.s.signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.s.log.String(), "reloaded configuration and knowledge") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := policyAnswer("a@ewstlandhigh.school.nz"); !strings.HasPrefix(got, "action=HOLD") || !strings.Contains(got, "westlandhigh.school.nz") {
		t.Fatalf("after learning: %q, want HOLD naming westlandhigh.school.nz", got)
	}
	// And through the milter: held, the sender asked.
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"d@ewstlandhigh.school.nz"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	h.links(t, 1)
	if countRcpt(h.pf.Sink.Recipients(), "d@ewstlandhigh.school.nz") != 0 {
		t.Fatal("a slip of a learned correspondent was delivered")
	}
}

// TestSenderCanAnswerByReply: with links unusable, the sender replies
// "send" to the notification; the reply listener accepts only its signed
// address, only from the sender, and the message is delivered once.
func TestSenderCanAnswerByReply(t *testing.T) {
	replyAddr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	// The harness writes listen.reply from STRAY_E2E_REPLY_LISTEN.
	h := startHoldWith(t, "", "  reply_domain: reply.example.org\n", "STRAY_E2E_REPLY_LISTEN="+replyAddr)
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"x@gmial.com"}, heldMsg); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	h.links(t, 1)
	note := string(h.notify.Messages()[0].Data)
	m := regexp.MustCompile(`Reply-To: <(r-[0-9a-f]+-\d+-[0-9a-f]+@reply\.example\.org)>`).FindStringSubmatch(note)
	if m == nil || !strings.Contains(note, "SEND, FIX") {
		t.Fatalf("notification lacks a reply address:\n%s", note)
	}
	reply := "From: alice@example.org\nSubject: Re: Held\n\nSend\n\n> Your message ...\n"
	// Someone else cannot answer, nor can anyone write to another address.
	if rcpt, data, _ := postfixtest.Send(replyAddr, "mallory@example.net", []string{m[1]}, reply); len(rcpt) != 1 || rcpt[0].Code != 250 || data.Code != 550 {
		t.Errorf("reply from someone else: %v %v", rcpt, data)
	}
	if rcpt, _, _ := postfixtest.Send(replyAddr, "alice@example.org", []string{"victim@example.com"}, reply); len(rcpt) != 1 || rcpt[0].Code != 550 {
		t.Errorf("relay attempt: %v", rcpt)
	}
	if rcpt, data, err := postfixtest.Send(replyAddr, "alice@example.org", []string{m[1]}, reply); err != nil || rcpt[0].Code != 250 || data.Code != 250 {
		t.Fatalf("reply: %v %v %v", rcpt, data, err)
	}
	got := h.pf.Sink.WaitRecipients(1, 30*time.Second)
	time.Sleep(time.Second)
	if countRcpt(h.pf.Sink.Recipients(), "x@gmial.com") != 1 {
		t.Fatalf("delivered %v", got)
	}
}
