// Package postfixtest starts a real, private Postfix for tests: its own
// config, queue and log directories under a temporary directory, smtpd on a
// loopback port, and all mail relayed to an in-process SMTP sink. It needs
// Debian's postfix package and root (Postfix's master runs as root and drops
// to the postfix user).
//
// It is test support only: nothing in the product imports it.
package postfixtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Available reports why Postfix cannot run here ("" when it can).
func Available() string {
	if _, err := exec.LookPath("postfix"); err != nil {
		if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
			return "postfix is not installed (apt-get install postfix)"
		}
	}
	if os.Geteuid() != 0 {
		return "postfix's master must run as root"
	}
	return ""
}

// Require skips the test when Postfix cannot run, unless STRAY_REQUIRE_POSTFIX
// is set (CI sets it), in which case it fails.
func Require(t testing.TB) {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("STRAY_REQUIRE_POSTFIX") != "" {
			t.Fatalf("postfix required: %s", why)
		}
		t.Skipf("skipping: %s (CI sets STRAY_REQUIRE_POSTFIX and installs it)", why)
	}
}

// FreePort returns a free loopback TCP port.
func FreePort(t testing.TB) int {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// A port handed out earlier may not be bound yet (a Postfix
		// still starting): the kernel can offer it again, and two
		// servers of one test then race for it.
		if !handed[port] {
			handed[port] = true
			return port
		}
	}
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// Options configure a Postfix instance.
type Options struct {
	// Milter, when set, is smtpd_milters and non_smtpd_milters
	// (e.g. "inet:127.0.0.1:8895").
	Milter string
	// Policy, when set, adds check_policy_service inet:Policy to
	// smtpd_recipient_restrictions.
	Policy string
	// MilterTimeout is milter_connect/command_timeout (default 5s).
	MilterTimeout time.Duration
	// SMTPPort, when set, is smtpd's loopback port (default: a free one).
	SMTPPort int
	// Extra main.cf settings.
	Extra map[string]string
	// Master is appended to master.cf: more services, such as a content
	// filter's re-injection listener.
	Master string
}

// Postfix is a running private Postfix.
type Postfix struct {
	t       testing.TB
	Dir     string
	SMTP    string // smtpd address, 127.0.0.1:PORT
	Sink    *Sink
	confDir string
}

// Start starts Postfix with a fresh sink; both stop when the test ends.
func Start(t testing.TB, o Options) *Postfix {
	t.Helper()
	Require(t)
	sink := StartSink(t)
	dir, err := os.MkdirTemp("", "stray-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := &Postfix{t: t, Dir: dir, Sink: sink, confDir: filepath.Join(dir, "etc")}
	port := o.SMTPPort
	if port == 0 {
		port = FreePort(t)
	}
	p.SMTP = fmt.Sprintf("127.0.0.1:%d", port)
	for _, d := range []string{"etc", "queue", "data"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.Chown(filepath.Join(dir, "data"), postfixUID(t), -1)
	mt := o.MilterTimeout
	if mt == 0 {
		mt = 5 * time.Second
	}
	main := map[string]string{
		"compatibility_level":                   "3.6",
		"queue_directory":                       filepath.Join(dir, "queue"),
		"data_directory":                        filepath.Join(dir, "data"),
		"maillog_file":                          filepath.Join(dir, "maillog"),
		"maillog_file_permissions":              "0644",
		"maillog_file_prefixes":                 dir,
		"myhostname":                            "stray-test.localdomain",
		"mydomain":                              "localdomain",
		"mydestination":                         "",
		"inet_interfaces":                       "127.0.0.1",
		"inet_protocols":                        "ipv4",
		"mynetworks":                            "127.0.0.0/8",
		"relayhost":                             "[127.0.0.1]:" + sink.Addr[strings.LastIndexByte(sink.Addr, ':')+1:],
		"smtp_dns_support_level":                "disabled",
		"smtp_host_lookup":                      "native",
		"smtpd_relay_restrictions":              "permit_mynetworks, reject_unauth_destination",
		"alias_maps":                            "",
		"alias_database":                        "",
		"local_recipient_maps":                  "",
		"smtputf8_enable":                       "yes",
		"biff":                                  "no",
		"milter_protocol":                       "6",
		"milter_default_action":                 "tempfail",
		"milter_connect_timeout":                fmt.Sprintf("%ds", int(mt.Seconds())),
		"milter_command_timeout":                fmt.Sprintf("%ds", int(mt.Seconds())),
		"smtpd_policy_service_timeout":          fmt.Sprintf("%ds", int(mt.Seconds())),
		"queue_run_delay":                       "1s",
		"minimal_backoff_time":                  "1s",
		"maximal_backoff_time":                  "2s",
		"smtpd_error_sleep_time":                "0",
		"smtpd_soft_error_limit":                "1000",
		"smtpd_hard_error_limit":                "1000",
		"smtpd_recipient_limit":                 "1000",
		"smtpd_client_connection_rate_limit":    "0",
		"smtp_connection_cache_on_demand":       "yes",
		"default_destination_concurrency_limit": "20",
		"header_size_limit":                     "102400",
		"message_size_limit":                    "10240000",
		"disable_vrfy_command":                  "yes",
		"smtpd_banner":                          "$myhostname ESMTP",
	}
	if o.Milter != "" {
		main["smtpd_milters"] = o.Milter
		main["non_smtpd_milters"] = o.Milter
	}
	if o.Policy != "" {
		// Before permit_mynetworks: the policy must see the trusted test
		// client's mail too.
		main["smtpd_recipient_restrictions"] = "check_policy_service inet:" + o.Policy + ", permit_mynetworks, reject_unauth_destination"
	}
	for k, v := range o.Extra {
		main[k] = v
	}
	var mb strings.Builder
	keys := make([]string, 0, len(main))
	for k := range main {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&mb, "%s = %s\n", k, main[k])
	}
	write(t, filepath.Join(p.confDir, "main.cf"), mb.String())
	write(t, filepath.Join(p.confDir, "master.cf"), strings.ReplaceAll(masterCF, "SMTPADDR", p.SMTP)+o.Master)
	t.Cleanup(p.stop)
	p.postfix("start")
	p.waitSMTP()
	return p
}

const masterCF = `SMTPADDR  inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
`

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func postfixUID(t testing.TB) int {
	out, err := exec.Command("id", "-u", "postfix").Output()
	if err != nil {
		t.Fatalf("no postfix user: %v", err)
	}
	var uid int
	fmt.Sscan(string(out), &uid)
	return uid
}

func (p *Postfix) postfix(args ...string) {
	p.t.Helper()
	cmd := exec.Command("postfix", append([]string{"-c", p.confDir}, args...)...)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("postfix %v: %v\n%s\n%s", args, err, out, p.Log())
	}
}

func (p *Postfix) stop() {
	exec.Command("postfix", "-c", p.confDir, "abort").Run()
	if p.t.Failed() {
		p.t.Logf("postfix log:\n%s", p.Log())
	}
	// Wait for master to go, so ports and the directory can be reused.
	pidFile := filepath.Join(p.Dir, "queue", "pid", "master.pid")
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(pidFile); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.RemoveAll(p.Dir)
}

// MasterPID is the pid of the instance's master process.
func (p *Postfix) MasterPID(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Dir, "queue", "pid", "master.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("master.pid: %v", err)
	}
	return pid
}

func (p *Postfix) waitSMTP() {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", p.SMTP, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "220") {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("postfix smtpd on %s did not come up\n%s", p.SMTP, p.Log())
}

// Log returns Postfix's log so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "maillog"))
	return string(b)
}

// SetMilter makes spec the instance's milter ("": none) and reloads it:
// smtpd processes started after the reload talk to it. A measurement that
// compares milters moves them between instances from round to round, so
// that what differs between the instances does not count for one milter.
func (p *Postfix) SetMilter(spec string) {
	p.t.Helper()
	cmd := exec.Command("postconf", "-c", p.confDir, "-e", "smtpd_milters="+spec, "non_smtpd_milters="+spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("postconf: %v\n%s", err, out)
	}
	p.postfix("reload")
}

// Flush asks the queue manager to retry deferred mail now.
func (p *Postfix) Flush() { p.postfix("flush") }

// Queue returns the queue ids in Postfix's queue (active, deferred, hold…)
// and how many of them are on hold.
func (p *Postfix) Queue() (ids []string, held int) {
	out, _ := exec.Command("postqueue", "-c", p.confDir, "-j").Output()
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		s := string(line)
		if i := strings.Index(s, `"queue_id": "`); i >= 0 {
			id := s[i+13:]
			ids = append(ids, id[:strings.IndexByte(id, '"')])
		}
		if strings.Contains(s, `"queue_name": "hold"`) {
			held++
		}
	}
	return ids, held
}

// Queued counts the messages in Postfix's queue (maildrop, incoming,
// active, deferred, hold) from its directories: cheaper than Queue, for
// polling while a measurement waits for the queue to drain.
func (p *Postfix) Queued() int {
	n := 0
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		filepath.WalkDir(filepath.Join(p.Dir, "queue", q), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return nil
		})
	}
	return n
}

// WaitLog waits until Postfix's log contains s.
func (p *Postfix) WaitLog(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Log(), s) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Message is one message the sink received.
type Message struct {
	From string
	To   []string
	Data []byte
}

// Sink is an in-process SMTP server that accepts and records everything.
type Sink struct {
	Addr string
	// refuse, when set, answers a recipient first: an error refuses it
	// as a next hop would.
	refuse func(rcpt string) error
	mu     sync.Mutex
	msgs   []Message
	cond   *sync.Cond
}

// StartSink starts a sink on a loopback port until the test ends.
func StartSink(t testing.TB) *Sink { return StartSinkOn(t, "127.0.0.1:0", nil) }

// StartSinkOn starts a sink on addr (a loopback HOST:PORT; port 0 picks
// one) that refuses the recipients refuse returns an error for, and then
// offers DSN as a next hop does (the plain sink does not: go-smtp refuses
// Postfix's ORCPT for a UTF-8 recipient).
func StartSinkOn(t testing.TB, addr string, refuse func(rcpt string) error) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: l.Addr().String(), refuse: refuse}
	s.cond = sync.NewCond(&s.mu)
	srv := smtp.NewServer(sinkBackend{s})
	srv.Domain = "sink.localdomain"
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.EnableBINARYMIME = true
	srv.EnableDSN = refuse != nil
	srv.MaxRecipients = 10000
	srv.MaxMessageBytes = 64 << 20
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Messages returns what the sink received so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Recipients returns every recipient delivered so far, in order.
func (s *Sink) Recipients() []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, m.To...)
	}
	return out
}

// WaitRecipients waits until at least n recipients were delivered.
func (s *Sink) WaitRecipients(n int, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		r := s.Recipients()
		if len(r) >= n || time.Now().After(deadline) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type sinkBackend struct{ s *Sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct {
	s   *Sink
	msg Message
}

func (x *sinkSession) AuthPlain(string, string) error { return nil }
func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	x.msg = Message{From: from}
	return nil
}
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.s.refuse != nil {
		if err := x.s.refuse(to); err != nil {
			return err
		}
	}
	x.msg.To = append(x.msg.To, to)
	return nil
}
func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.msg.Data = b
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, x.msg)
	x.s.mu.Unlock()
	x.msg = Message{}
	return nil
}
func (x *sinkSession) Reset()        { x.msg = Message{} }
func (x *sinkSession) Logout() error { return nil }
