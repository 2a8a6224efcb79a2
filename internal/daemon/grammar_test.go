package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/postfixtest"
)

// listenKeys are the listen.* keys with an address, each set on a config
// by set.
var listenKeys = []struct {
	name string
	set  func(*config.Listen, string)
}{
	{"milter", func(l *config.Listen, s string) { l.Milter = s }},
	{"policy", func(l *config.Listen, s string) { l.Policy = s }},
	{"http", func(l *config.Listen, s string) { l.HTTP = s }},
	{"metrics", func(l *config.Listen, s string) { l.Metrics = s }},
	{"reply", func(l *config.Listen, s string) { l.Reply = s }},
	{"relay", func(l *config.Listen, s string) { l.Relay = s }},
	{"sink", func(l *config.Listen, s string) { l.Sink = s }},
}

// listenAgreement reports, for listen.<key> set to s, whether config
// validation accepts it and whether the daemon's parser (the one its
// Start functions and the --listen flags use) does.
func listenAgreement(t *testing.T, key string, set func(*config.Listen, string), s string) (configOK, runtimeOK bool, why string) {
	c := config.Default()
	c.Listen = config.Listen{} // only the key under test
	set(&c.Listen, s)
	configOK = true
	if err := c.Validate(); err != nil {
		for _, p := range err.(config.Problems) {
			if strings.HasPrefix(p, "listen."+key+": ") {
				configOK, why = false, p
			}
		}
	}
	_, err := parseListen(key, s)
	if err != nil {
		why += " / " + err.Error()
	}
	return configOK, err == nil, why
}

// Issue 12: listen.milter refused HOST:PORT, which the milter's own parser
// took (stray milter --listen 127.0.0.1:8895 worked, the same value in
// the config did not), and listen.policy took 127.0.0.1: (port 0 at run
// time). Config validation and the daemon now read every listen address
// with one grammar: each string is accepted by both or refused by both.
func TestListenAddressesMeanTheSameToConfigAndDaemon(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		milter bool // accepted as listen.milter
		tcp    bool // accepted as listen.policy, http, …
	}{
		{"inet:127.0.0.1:8895", true, false},
		{"inet:8895@127.0.0.1", true, false},
		{"inet:8895@[::1]", true, false},
		{"inet:8895", true, false},
		{"inet6:[::1]:8895", true, false},
		{"inet6:8895@::1", true, false},
		{"unix:/var/spool/postfix/stray/milter.sock", true, false},
		{"local:/run/stray/milter.sock", true, false},
		{"127.0.0.1:8895", true, true},
		{"[::1]:8895", true, true},
		{":8895", true, true},
		{"localhost:8895", true, true},
		{"127.0.0.1:", false, false},
		{"127.0.0.1:0", false, false},
		{"localhost:smtp", false, false},
		{"127.0.0.1:70000", false, false},
		{"inet:127.0.0.1", false, false},
		{"inet:127.0.0.1:0", false, false},
		{"inet6:8895@127.0.0.1", false, false},
		{"unix:", false, false},
		{"tcp:127.0.0.1:8895", false, false},
		{"/run/stray.sock", false, false},
		{"127.0.0.1", false, false},
		{"bad host:25", false, false},
	}
	for _, tt := range tests {
		for _, k := range listenKeys {
			want := tt.tcp
			if k.name == "milter" {
				want = tt.milter
			}
			configOK, runtimeOK, why := listenAgreement(t, k.name, k.set, tt.in)
			if configOK != want || runtimeOK != want {
				t.Errorf("listen.%s: %q: config accepts %v, daemon accepts %v, want %v (%s)", k.name, tt.in, configOK, runtimeOK, want, why)
			}
		}
	}
}

func FuzzListenAddressesMeanTheSameToConfigAndDaemon(f *testing.F) {
	for _, s := range []string{"inet:127.0.0.1:8895", "inet:1@h", "inet6:1", "unix:/s", "local:s", "127.0.0.1:1", "[::1]:65535", ":0", "a:b", "inet:[::1]:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return // off
		}
		for _, k := range listenKeys {
			configOK, runtimeOK, why := listenAgreement(t, k.name, k.set, s)
			if configOK != runtimeOK {
				t.Fatalf("listen.%s: %q: config accepts %v, daemon accepts %v (%s)", k.name, s, configOK, runtimeOK, why)
			}
		}
	})
}

// The milter's listen address from a config file opens, in each form, and
// a --listen value the config would refuse is refused by StartMilter too.
func TestStartMilterOpensEveryForm(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: \"\"\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := func() int { return postfixtest.FreePort(t) }
	for _, addr := range []string{fmt.Sprintf("inet:127.0.0.1:%d", port()), fmt.Sprintf("inet:%d@127.0.0.1", port()),
		fmt.Sprintf("127.0.0.1:%d", port()), "unix:" + filepath.Join(dir, "m.sock"), "local:" + filepath.Join(dir, "l.sock")} {
		d, err := New(t.Context(), Options{ConfigPath: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.StartMilter(addr); err != nil {
			d.Close()
			t.Fatalf("StartMilter(%q): %v", addr, err)
		}
		a, err := parseListen("milter", addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial(a.Network, a.Address)
		if err != nil {
			t.Errorf("%q: nothing listens: %v", addr, err)
		} else {
			c.Close()
		}
		d.Close()
	}
	d, err := New(t.Context(), Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.StartMilter("inet:127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("StartMilter(inet:127.0.0.1:0) = %v, want the grammar's refusal", err)
	}
}
