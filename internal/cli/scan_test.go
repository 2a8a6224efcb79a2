package cli

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/scan/scantest"
)

// zoneServer serves the scan package's zone of registered lookalikes (or
// the given zone) on 127.0.0.1.
func zoneServer(t *testing.T, zone string) string {
	t.Helper()
	if zone == "" {
		b, err := os.ReadFile("../scan/testdata/lookalikes.zone")
		if err != nil {
			t.Fatal(err)
		}
		zone = string(b)
	}
	srv, err := scantest.Start(zone, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var o map[string]any
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("not JSON: %v: %s", err, l)
		}
		objs = append(objs, o)
	}
	return objs
}

func TestScanJSONListsRegisteredLookalikesWithRecordsAndMail(t *testing.T) {
	t.Parallel()
	addr := zoneServer(t, "")
	code, out, errOut := run(t, "", "scan", "--resolver", addr, "--timeout", "300ms", "--format", "json", "army.mil", "gmail.com")
	if code != ExitFlagged {
		t.Fatalf("exit %d, want %d: %s", code, ExitFlagged, errOut)
	}
	got := map[string]map[string]any{}
	for _, o := range jsonLines(t, out) {
		for _, k := range []string{"domain", "kind", "a", "aaaa", "mx", "ns", "accepts_mail", "status", "original", "likelihood"} {
			if _, ok := o[k]; !ok {
				t.Errorf("%v: no %q", o["domain"], k)
			}
		}
		if o["status"] != "registered" && o["status"] != "wildcard" {
			t.Errorf("%v: status %v reported without --all", o["domain"], o["status"])
		}
		got[o["domain"].(string)] = o
	}
	for d, want := range map[string]bool{"army.ml": true, "army.il": true, "armymil.com": false, "armym.il": true,
		"gmail.cm": true, "gmail.om": true, "gmailc.om": true, "xn--gmil-63d.com": true, "xn--gml-7cd4q.com": true} {
		o, ok := got[d]
		if !ok {
			t.Errorf("%s not reported", d)
			continue
		}
		if o["accepts_mail"] != want {
			t.Errorf("%s: accepts_mail %v, want %v", d, o["accepts_mail"], want)
		}
	}
	if o := got["army.ml"]; o["kind"] != "tld-swap" || o["original"] != "army.mil" || len(o["mx"].([]any)) != 1 {
		t.Errorf("army.ml: %v", o)
	}
	if _, ok := got["gmial.com"]; ok {
		t.Error("gmial.com (SERVFAIL) reported as registered")
	}
	if !strings.Contains(errOut, "unknown") {
		t.Errorf("no note of the unknown lookalikes on stderr: %q", errOut)
	}
}

func TestScanAllAndCSVReportEveryLookalike(t *testing.T) {
	t.Parallel()
	addr := zoneServer(t, "")
	code, out, _ := run(t, "", "scan", "--resolver", addr, "--timeout", "300ms", "--format", "csv", "--all", "gmail.com")
	if code != ExitFlagged {
		t.Fatalf("exit %d", code)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] != "domain" || rows[0][11] != "accepts_mail" {
		t.Errorf("header %v", rows[0])
	}
	status := map[string]string{}
	for _, r := range rows[1:] {
		status[r[0]] = r[5]
	}
	for d, want := range map[string]string{"gmail.cm": "registered", "gmial.com": "unknown", "gmaill.com": "unknown", "gmal.com": "unregistered", "gmail.om": "wildcard"} {
		if status[d] != want {
			t.Errorf("%s: %q, want %q", d, status[d], want)
		}
	}
	if len(rows) < 200 {
		t.Errorf("--all printed %d rows", len(rows)-1)
	}
}

func TestScanTextSummarisesEachDomain(t *testing.T) {
	t.Parallel()
	addr := zoneServer(t, "")
	_, out, _ := run(t, "", "scan", "--resolver", addr, "--timeout", "300ms", "army.mil")
	for _, want := range []string{"army.mil: ", "lookalikes checked", "army.ml ", "tld-swap", "registered", "MX mail.army.ml", "armymil.com", "null MX"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

type diffJSON struct {
	ScannedAt string           `json:"scanned_at"`
	New       []map[string]any `json:"new"`
	Gone      []map[string]any `json:"gone"`
	Changed   []map[string]any `json:"changed"`
}

// The cron set-up: the first run reports everything as new (exit 1), the
// second nothing (exit 0), and a change of hands is reported with exit 1.
func TestScanStateReportsOnlyChangesAndExitsOneOnNews(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "scan.json")
	// army.mil itself resolves in both: the scan checks that first.
	before := "army.mil. NS ns.army.example.\n" + "army.ml. NS ns1.freenom.example.\narmy.ml. A 192.0.2.10\narmy.il. NS ns.il.example.\n"
	after := "army.mil. NS ns.army.example.\n" + "army.ml. NS ns1.new-owner.example.\narmy.ml. MX 10 mx.new-owner.example.\nmx.new-owner.example. A 192.0.2.70\n" +
		"armym.il. NS ns.il.example.\n"
	args := func(addr string) []string {
		return []string{"scan", "--resolver", addr, "--kinds", "tld-swap,shifted-dot", "--state", state, "--format", "json", "army.mil"}
	}
	a1 := zoneServer(t, before)
	code, out, errOut := run(t, "", args(a1)...)
	var d diffJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != ExitFlagged || len(d.New) != 2 {
		t.Fatalf("first run: exit %d, %v, %s %s", code, err, out, errOut)
	}
	if code, out, _ = run(t, "", args(a1)...); code != ExitOK || !strings.Contains(out, `"new":[]`) {
		t.Fatalf("second run: exit %d, %s", code, out)
	}
	a2 := zoneServer(t, after)
	code, out, _ = run(t, "", args(a2)...)
	d = diffJSON{}
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != ExitFlagged {
		t.Fatalf("third run: exit %d, %v, %s", code, err, out)
	}
	if len(d.New) != 1 || d.New[0]["domain"] != "armym.il" || len(d.Gone) != 1 || d.Gone[0]["domain"] != "army.il" ||
		len(d.Changed) != 1 || d.Changed[0]["domain"] != "army.ml" {
		t.Errorf("third run diff: %s", out)
	}
	if !strings.Contains(out, `"field":"ns"`) || !strings.Contains(out, `"field":"mx"`) {
		t.Errorf("NS and MX changes missing: %s", out)
	}
	_, text, _ := run(t, "", append(args(a2)[:len(args(a2))-3], "--format", "text", "army.mil")...)
	if !strings.Contains(text, "no change") {
		t.Errorf("text diff of an unchanged scan: %s", text)
	}
}

func TestScanEmitDenyLeavesOutTheProtectedSpace(t *testing.T) {
	t.Parallel()
	addr := zoneServer(t, "")
	deny := filepath.Join(t.TempDir(), "deny.txt")
	run(t, "", "scan", "--resolver", addr, "--timeout", "300ms", "--emit-deny", deny, "--protect", "mil", "army.mil")
	b, err := os.ReadFile(deny)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && !strings.HasPrefix(l, "#") {
			lines[f[0]] = true
			if f[1] != "army.mil" {
				t.Errorf("line %q: original %q", l, f[1])
			}
		}
	}
	for _, d := range []string{"army.ml", "army.il", "armym.il", "army-mil.com"} {
		if !lines[d] {
			t.Errorf("%s missing from the deny list:\n%s", d, b)
		}
	}
	for _, d := range []string{"armymil.com" /* null MX */, "amry.mil" /* protected */, "armymil.net" /* no mail */} {
		if lines[d] {
			t.Errorf("%s in the deny list:\n%s", d, b)
		}
	}
}

// --smtp-probe wiring, against a loopback catch-all.
func TestScanSMTPProbeMarksCatchAlls(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				c.Write([]byte("220 sink\r\n"))
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch strings.ToUpper(l[:4]) {
					case "EHLO":
						c.Write([]byte("250 sink\r\n"))
					case "QUIT":
						c.Write([]byte("221 bye\r\n"))
						return
					case "DATA":
						c.Write([]byte("554 no DATA expected\r\n"))
					default:
						c.Write([]byte("250 ok\r\n"))
					}
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	addr := zoneServer(t, "army.mil. NS ns.loop.example.\narmy.ml. NS ns.loop.example.\narmy.ml. MX 10 mx.loop.example.\nmx.loop.example. A 127.0.0.1\n")
	code, out, errOut := run(t, "", "scan", "--resolver", addr, "--kinds", "tld-swap", "--smtp-probe", "--smtp-port", strconv.Itoa(port), "--format", "json", "army.mil")
	if code != ExitFlagged || !strings.Contains(out, `"accepted":true`) {
		t.Errorf("exit %d: %s %s", code, out, errOut)
	}
}

func TestScanUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	addr := zoneServer(t, "")
	// A loopback port nothing answers on.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := pc.LocalAddr().String()
	t.Cleanup(func() { pc.Close() })
	for _, tc := range [][]string{
		{"scan", "--resolver", addr, "--format", "xml", "army.mil"},
		{"scan", "--resolver", addr, "--format", "csv", "--state", "x.json", "army.mil"},
		{"scan", "--resolver", addr},
		{"scan", "--resolver", addr, "mil"},
		{"scan", "--resolver", addr, "army.notatld"},
		{"scan", "--resolver", addr, "--kinds", "typo", "army.mil"},
		{"scan", "--resolver", addr, "--concurrency", "0", "army.mil"},
		{"scan", "--resolver", "nonsense", "army.mil"},
		{"scan", "--nope"},
	} {
		if code, _, _ := run(t, "", tc...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", tc, code, ExitUsage)
		}
	}
	// Issue 12: DNS down is a runtime failure, not a usage error.
	if code, _, _ := run(t, "", "scan", "--resolver", silent, "--timeout", "50ms", "--kinds", "tld-swap", "army.mil"); code != ExitRuntime {
		t.Errorf("no DNS answers at all: exit %d, want %d", code, ExitRuntime)
	}
}

func TestScanReadsDomainsFromStdin(t *testing.T) {
	t.Parallel()
	addr := zoneServer(t, "")
	code, out, _ := run(t, "# ours\nmail.mil\n\n", "scan", "--resolver", addr, "--format", "json", "--kinds", "tld-swap")
	if code != ExitFlagged || !strings.Contains(out, `"domain":"mail.ml"`) {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestScanHelpHasSynopsisAndExamples(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "", "scan", "--help")
	for _, want := range []string{"usage: stray scan", "Examples:", "--resolver", "--state", "--emit-deny", "--smtp-probe", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if code != ExitOK {
		t.Errorf("exit %d", code)
	}
}

// A resolver that answers NXDOMAIN for everything made every lookalike
// "unregistered": "0 registered", exit 0, a clean bill of health. The scanned
// domain must resolve first, or the scan refuses with exit 2.
func TestScanRefusesAResolverThatSaysTheScannedDomainDoesNotExist(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, zone string
	}{
		{"NXDOMAIN for everything", "nothing.example. A 192.0.2.1\n"},
		{"lookalikes but not the domain", "army.ml. NS ns.example.\narmy.ml. A 192.0.2.10\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := zoneServer(t, tc.zone)
			code, out, errOut := run(t, "", "scan", "--resolver", addr, "--timeout", "300ms", "--kinds", "tld-swap", "army.mil")
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stdout %q", code, ExitUsage, out)
			}
			if !strings.Contains(errOut, "army.mil") || !strings.Contains(errOut, "NXDOMAIN") || !strings.Contains(errOut, "--resolver") {
				t.Errorf("stderr does not say army.mil got NXDOMAIN and how to use another resolver: %q", errOut)
			}
			if out != "" {
				t.Errorf("printed a report for an untrustworthy resolver: %q", out)
			}
		})
	}
}
