// Package listenaddr is the one grammar of stray's listen addresses: the
// config's listen.* keys, the --listen flags and the daemon that opens the
// listeners all parse them here, so that a value the config accepts is
// exactly a value the daemon can open, and the other way round.
//
// A milter address is written as the MTA's side writes it:
//
//	inet:HOST:PORT      Postfix's smtpd_milters form; HOST may be [IPv6]
//	inet:PORT@HOST      Sendmail's and libmilter's form (INPUT_MAIL_FILTER S=)
//	inet:PORT           libmilter's form: every address
//	inet6:…             the same forms, IPv6 only
//	unix:PATH           a unix-domain socket (local:PATH, Sendmail's spelling)
//	HOST:PORT           as stray's other listen keys (listen.policy, …)
//
// Every other listener (policy, http, metrics, reply, relay, sink) is
// HOST:PORT: an empty HOST is every address, an IPv6 HOST is bracketed
// ([::1]:10045). A PORT is a number from 1 to 65535: port 0 would be a
// port nobody is told, and a service name depends on /etc/services.
//
// It parses; it never opens anything.
package listenaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Addr is a parsed listen address, as net.Listen takes it.
type Addr struct {
	// Network is "tcp", "tcp6" (inet6:) or "unix".
	Network string
	// Address is HOST:PORT for tcp and tcp6, the socket's path for unix.
	Address string
}

// String is the address as net.Listen takes it, for logs.
func (a Addr) String() string { return a.Network + ":" + a.Address }

// MilterForms names the milter forms, for errors and help texts.
const MilterForms = "inet:HOST:PORT, inet:PORT@HOST, inet6:…, unix:PATH or HOST:PORT"

// maxSocketPath is the longest unix socket path Linux takes (sun_path is
// 108 bytes with its terminating NUL).
const maxSocketPath = 107

// Milter parses a milter listen address.
func Milter(s string) (Addr, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && (scheme == "unix" || scheme == "local"):
		if err := socketPath(rest); err != nil {
			return Addr{}, fmt.Errorf("%q: %w (want unix:PATH)", s, err)
		}
		return Addr{Network: "unix", Address: rest}, nil
	case ok && (scheme == "inet" || scheme == "inet6"):
		a, err := inet(rest, scheme == "inet6")
		if err != nil {
			return Addr{}, fmt.Errorf("%q: %w (want %s)", s, err, MilterForms)
		}
		return a, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || isScheme(host) { // INET:8895 is not a host named INET
		return Addr{}, fmt.Errorf("%q: want %s (in lower case)", s, MilterForms)
	}
	a, err := tcp(host, port, false)
	if err != nil {
		return Addr{}, fmt.Errorf("%q: %w (want %s)", s, err, MilterForms)
	}
	return a, nil
}

// TCP parses HOST:PORT.
func TCP(s string) (Addr, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, fmt.Errorf("%q: want HOST:PORT, such as 127.0.0.1:10045 or [::1]:10045", s)
	}
	if isScheme(host) {
		// inet:10045 would be a host named "inet".
		return Addr{}, fmt.Errorf("%q: %s: is the milter's syntax; want HOST:PORT, such as 127.0.0.1:%s", s, host, port)
	}
	a, err := tcp(host, port, false)
	if err != nil {
		return Addr{}, fmt.Errorf("%q: %w (want HOST:PORT)", s, err)
	}
	return a, nil
}

// isScheme reports whether h is a milter scheme, in any case.
func isScheme(h string) bool {
	switch strings.ToLower(h) {
	case "inet", "inet6", "unix", "local":
		return true
	}
	return false
}

// inet parses what follows "inet:" or "inet6:": HOST:PORT, PORT@HOST or
// PORT.
func inet(s string, v6 bool) (Addr, error) {
	if port, host, ok := strings.Cut(s, "@"); ok {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			return Addr{}, errors.New("no HOST after @")
		}
		return tcp(host, port, v6)
	}
	if isDigits(s) {
		return tcp("", s, v6)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, errors.New("not HOST:PORT, PORT@HOST or PORT")
	}
	return tcp(host, port, v6)
}

func tcp(host, port string, v6 bool) (Addr, error) {
	if err := checkPort(port); err != nil {
		return Addr{}, err
	}
	if err := checkHost(host, v6); err != nil {
		return Addr{}, err
	}
	network := "tcp"
	if v6 {
		network = "tcp6"
	}
	return Addr{Network: network, Address: net.JoinHostPort(host, port)}, nil
}

func checkPort(p string) error {
	if !isDigits(p) {
		return fmt.Errorf("port %q: want a number from 1 to 65535", p)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("port %s: want a number from 1 to 65535", p)
	}
	return nil
}

// checkHost accepts "" (every address), an IP address (IPv6 with a zone)
// or a host name.
func checkHost(h string, v6 bool) error {
	if h == "" {
		return nil
	}
	if isScheme(h) {
		return fmt.Errorf("host %q: a milter scheme, not a host name", h)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if v6 && ip.Is4() {
			return fmt.Errorf("host %s: inet6 wants an IPv6 address", h)
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host name longer than 253 bytes")
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q: not an IP address or a host name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q: not an IP address or a host name", h)
			}
		}
	}
	return nil
}

func socketPath(p string) error {
	switch {
	case p == "":
		return errors.New("no socket path")
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("a NUL byte in the socket path")
	case len(p) > maxSocketPath:
		return fmt.Errorf("socket path longer than %d bytes", maxSocketPath)
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
