package scan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// Resolver asks one DNS question. An error means there is no answer to go
// by (a timeout, a network failure); a DNS error code (NXDOMAIN, SERVFAIL)
// is an answer, with its Rcode set.
type Resolver interface {
	Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// DNSResolver asks a recursive resolver over UDP, retrying over TCP when an
// answer is truncated.
type DNSResolver struct {
	server   string
	timeout  time.Duration
	attempts int
	udp, tcp *dns.Client
}

// NewDNSResolver returns a resolver that asks server (HOST:PORT), waiting
// at most timeout for each of attempts tries.
func NewDNSResolver(server string, timeout time.Duration, attempts int) (*DNSResolver, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("resolver %q: want HOST:PORT", server)
	}
	if timeout <= 0 || attempts < 1 {
		return nil, errors.New("resolver: timeout and attempts must be positive")
	}
	return &DNSResolver{
		server:   server,
		timeout:  timeout,
		attempts: attempts,
		udp:      &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsSize},
		tcp:      &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// ednsSize is the EDNS buffer size of DNS flag day 2020.
const ednsSize = 1232

// SystemResolver returns the first name server of /etc/resolv.conf as
// HOST:PORT.
func SystemResolver() (string, error) {
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("resolver: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return "", errors.New("resolver: no nameserver in /etc/resolv.conf")
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}

// Query implements Resolver.
func (r *DNSResolver) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	var last error
	for range r.attempts {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.RecursionDesired = true
		m.SetEdns0(ednsSize, false)
		in, _, err := r.udp.ExchangeContext(ctx, m, r.server)
		if err == nil && in.Truncated {
			in, _, err = r.tcp.ExchangeContext(ctx, m, r.server)
		}
		if err == nil {
			return in, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, last
}
