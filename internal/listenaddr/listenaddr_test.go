package listenaddr

import (
	"net"
	"strings"
	"testing"
)

func TestMilterReadsThePostfixAndSendmailForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, network, address string
		err                  string // "": valid
	}{
		{"inet:127.0.0.1:8895", "tcp", "127.0.0.1:8895", ""},
		{"inet:localhost:8895", "tcp", "localhost:8895", ""},
		{"inet:[::1]:8895", "tcp", "[::1]:8895", ""},
		{"inet::8895", "tcp", ":8895", ""},
		{"inet:8895@127.0.0.1", "tcp", "127.0.0.1:8895", ""},
		{"inet:8895@[::1]", "tcp", "[::1]:8895", ""},
		{"inet:8895", "tcp", ":8895", ""},
		{"inet6:8895@::1", "tcp6", "[::1]:8895", ""},
		{"inet6:[::1]:8895", "tcp6", "[::1]:8895", ""},
		{"inet6:8895", "tcp6", ":8895", ""},
		{"unix:/var/spool/postfix/stray/milter.sock", "unix", "/var/spool/postfix/stray/milter.sock", ""},
		{"local:/run/stray.sock", "unix", "/run/stray.sock", ""},
		{"unix:rel.sock", "unix", "rel.sock", ""},
		{"127.0.0.1:8895", "tcp", "127.0.0.1:8895", ""},
		{"[::1]:8895", "tcp", "[::1]:8895", ""},
		{"mx.example.org:8895", "tcp", "mx.example.org:8895", ""},

		{"", "", "", "want inet:HOST:PORT"},
		{"inet:", "", "", "not HOST:PORT"},
		{"inet:127.0.0.1", "", "", "not HOST:PORT"},
		{"inet:127.0.0.1:0", "", "", "port 0"},
		{"inet:127.0.0.1:65536", "", "", "port 65536"},
		{"inet:127.0.0.1:smtp", "", "", `port "smtp"`},
		{"inet:8895@", "", "", "no HOST after @"},
		{"inet6:8895@127.0.0.1", "", "", "inet6 wants an IPv6 address"},
		{"inet:bad host:8895", "", "", "not an IP address or a host name"},
		{"unix:", "", "", "no socket path"},
		{"unix:/" + strings.Repeat("a", 107), "", "", "longer than 107"},
		{"unix:/a\x00b", "", "", "NUL"},
		{"tcp:127.0.0.1:8895", "", "", "want inet:HOST:PORT"},
		{"/var/run/stray.sock", "", "", "want inet:HOST:PORT"},
		{"127.0.0.1:", "", "", `port ""`},
		{"127.0.0.1", "", "", "want inet:HOST:PORT"},
		{"8895", "", "", "want inet:HOST:PORT"},
		{"INET:8895", "", "", "in lower case"},
		{"Unix:8895", "", "", "in lower case"},
		{"inet:inet:1", "", "", "a milter scheme, not a host name"}, // found by FuzzMilter
		{"inet:1@unix", "", "", "a milter scheme, not a host name"},
	}
	for _, tt := range tests {
		a, err := Milter(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Milter(%q) = %v, %v; want an error containing %q", tt.in, a, err, tt.err)
			}
			continue
		}
		if err != nil || a.Network != tt.network || a.Address != tt.address {
			t.Errorf("Milter(%q) = %+v, %v; want %s %s", tt.in, a, err, tt.network, tt.address)
		}
	}
}

func TestTCPWantsHostAndANumericPort(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"127.0.0.1:10045": true, ":8098": true, "[::1]:8098": true, "0.0.0.0:25": true, "localhost:8098": true,
		"[fe80::1%eth0]:25": true,
		"127.0.0.1":         false, "127.0.0.1:": false, "127.0.0.1:0": false, "localhost:smtp": false, "inet:127.0.0.1:1": false,
		"::1:25": false, "unix:/tmp/s": false, "a b:25": false, "127.0.0.1:+25": false, "127.0.0.1:99999": false,
		"inet:10045": false, "unix:10045": false, "INET:10045": false,
	} {
		a, err := TCP(in)
		if (err == nil) != ok {
			t.Errorf("TCP(%q) = %+v, %v; want ok %v", in, a, err, ok)
		}
	}
}

// What Milter and TCP accept, net.Listen takes: every accepted loopback
// address opens.
func TestAcceptedAddressesOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, p, _ := net.SplitHostPort(l.Addr().String())
		return p
	}
	for _, in := range []string{"inet:127.0.0.1:" + free(), "inet:" + free() + "@127.0.0.1", "127.0.0.1:" + free(), "unix:" + dir + "/m.sock", "local:" + dir + "/l.sock"} {
		a, err := Milter(in)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen(a.Network, a.Address)
		if err != nil {
			t.Errorf("%q parsed as %v does not open: %v", in, a, err)
			continue
		}
		l.Close()
	}
}

func FuzzMilter(f *testing.F) {
	for _, s := range []string{"inet:127.0.0.1:8895", "inet:8895@[::1]", "inet6:8895", "unix:/run/s", "local:x", "[::1]:1", "inet::1", "inet:1@", "inet:[::1]:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Milter(s)
		if err != nil {
			if a != (Addr{}) {
				t.Fatalf("Milter(%q) failed but returned %+v", s, a)
			}
			return
		}
		switch a.Network {
		case "unix":
			if a.Address == "" || len(a.Address) > maxSocketPath || strings.IndexByte(a.Address, 0) >= 0 {
				t.Fatalf("Milter(%q) = %+v: not a socket path", s, a)
			}
			if b, err := Milter("unix:" + a.Address); err != nil || b != a {
				t.Fatalf("unix:%s does not parse back: %+v, %v", a.Address, b, err)
			}
		case "tcp", "tcp6":
			// The canonical form parses back to itself.
			back := a.Address
			if a.Network == "tcp6" {
				back = "inet6:" + back
			}
			if b, err := Milter(back); err != nil || b != a {
				t.Fatalf("Milter(%q) = %+v; its address %q parses as %+v, %v", s, a, back, b, err)
			}
			if a.Network == "tcp" {
				if b, err := TCP(a.Address); err != nil || b != a {
					t.Fatalf("Milter(%q) = %+v; TCP(%q) = %+v, %v", s, a, a.Address, b, err)
				}
			}
		default:
			t.Fatalf("Milter(%q) = %+v: unknown network", s, a)
		}
	})
}

func FuzzTCP(f *testing.F) {
	for _, s := range []string{"127.0.0.1:10045", ":8098", "[::1]:1", "a:1", "[a]:1", "x.:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := TCP(s)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(a.Address)
		if err != nil || port == "0" || a.Network != "tcp" {
			t.Fatalf("TCP(%q) = %+v (%v)", s, a, err)
		}
		if b, err := TCP(a.Address); err != nil || b != a {
			t.Fatalf("TCP(%q) = %+v; TCP(%q) = %+v, %v", s, a, a.Address, b, err)
		}
		_ = host
	})
}
