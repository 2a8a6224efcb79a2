package config

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/stray-mail/stray/internal/relay/clientcert"
)

// Relay configures the SMTP relay front end.
type Relay struct {
	// NextHop is the MTA that queues and delivers what the relay passes:
	// HOST:PORT (required with listen.relay).
	NextHop string `yaml:"next_hop"`
	// Allow lists the client ranges (CIDR) that may relay; default
	// loopback only. Anyone else hears 554 at connect, unless AllowCerts
	// is set.
	Allow []string `yaml:"allow"`
	// AllowCerts lets clients outside Allow relay after STARTTLS with a
	// client certificate that meets one entry: a DNS name the certificate
	// carries (relay.example.com, or *.example.com for one label under
	// example.com or the literal wildcard name), verified against
	// ClientCA or the system roots, or "sha256:HEX", the SHA-256 of a
	// pinned certificate's public key (SubjectPublicKeyInfo, as
	// NextHopFingerprint). Clients outside Allow are then accepted at
	// connect and refused at MAIL (550 5.7.1) without such a certificate.
	// Needs TLSCert and TLSKey.
	AllowCerts []string `yaml:"allow_certs"`
	// ClientCA is a PEM file of the CA certificates that verify client
	// certificates allowed by name (default: the system roots); re-read
	// on SIGHUP.
	ClientCA string `yaml:"client_ca"`
	// TLSCert and TLSKey, when set, are offered with STARTTLS (re-read
	// on SIGHUP and when the files change; broken files keep the running
	// certificate); RequireTLS refuses MAIL before STARTTLS.
	TLSCert    string `yaml:"tls_cert"`
	TLSKey     string `yaml:"tls_key"`
	RequireTLS bool   `yaml:"require_tls"`
	// NextHopTLS is STARTTLS to the next hop: none, opportunistic
	// (default) or required (certificate verified).
	NextHopTLS NextHopTLS `yaml:"next_hop_tls"`
	// NextHopFingerprint pins the next hop's key: sha256:HEX, the SHA-256
	// of its certificate's SubjectPublicKeyInfo. STARTTLS is then
	// required and the certificate is accepted on the pin alone (no CA).
	NextHopFingerprint string `yaml:"next_hop_fingerprint"`
	// NextHopHelo is the name the relay gives in EHLO to the next hop
	// (default: the host name).
	NextHopHelo string `yaml:"next_hop_helo"`
	// MaxMessageSize is the SIZE limit in bytes (default 50 MiB).
	MaxMessageSize int64 `yaml:"max_message_size"`
	// DSN offers the DSN extension and passes RET, ENVID, NOTIFY and ORCPT
	// to the next hop (default on). The ORCPT=rfc822;<xtext of a UTF-8
	// address> that Postfix sends for an internationalised recipient is
	// passed on as RFC 6533's utf-8 type (the SMTP library refuses the
	// former with 501). Off: clients send no DSN parameters, and the next
	// hop reports failures as it always does.
	DSN bool `yaml:"dsn"`
}

// AllowPrefixes parses relay.allow (nil: the relay's default, loopback).
func (r Relay) AllowPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range r.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return nil, fmt.Errorf("%q: want a CIDR range such as 192.0.2.0/24", a)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ClientCAPool reads the PEM file at path (relay.client_ca, resolved by
// the caller) into a pool.
func (r Relay) ClientCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return p, nil
}

// ParseFingerprint parses a pinned key, "sha256:HEX": 64 hex digits, any
// case, colons between the bytes allowed (as openssl prints them).
func ParseFingerprint(s string) ([sha256.Size]byte, error) {
	var f [sha256.Size]byte
	h, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		return f, fmt.Errorf("%q: want sha256:HEX, the SHA-256 of the certificate's public key (SubjectPublicKeyInfo)", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return f, fmt.Errorf("%q: want sha256: and 64 hex digits", s)
	}
	copy(f[:], b)
	return f, nil
}

// Sink configures the defensive-registration sink.
type Sink struct {
	// Domains is a file of "DOMAIN INTENDED" lines (stray scan
	// --emit-deny): the lookalikes the organisation registered itself.
	Domains string `yaml:"domains"`
}

func (c *Config) relayProblems() []string {
	var p []string
	r := c.Relay
	if r.NextHop != "" {
		if _, _, err := net.SplitHostPort(r.NextHop); err != nil {
			p = append(p, fmt.Sprintf("relay.next_hop: %q: %v (want HOST:PORT)", r.NextHop, err))
		}
	}
	if c.Listen.Relay != "" && r.NextHop == "" {
		p = append(p, "relay.next_hop: required with listen.relay (the MTA that queues and delivers, HOST:PORT)")
	}
	if _, err := r.AllowPrefixes(); err != nil {
		p = append(p, "relay.allow: "+err.Error())
	}
	if err := r.NextHopTLS.Check(); err != nil {
		p = append(p, "relay.next_hop_tls: "+err.Error())
	}
	if r.NextHopFingerprint != "" {
		if _, err := ParseFingerprint(r.NextHopFingerprint); err != nil {
			p = append(p, "relay.next_hop_fingerprint: "+err.Error())
		}
		if r.NextHopTLS == "none" {
			p = append(p, "relay.next_hop_fingerprint: needs STARTTLS to the next hop, but relay.next_hop_tls is none")
		}
	}
	if strings.ContainsAny(r.NextHopHelo, " \t\r\n") {
		p = append(p, fmt.Sprintf("relay.next_hop_helo: %q: want a host name without spaces", r.NextHopHelo))
	}
	if (r.TLSCert == "") != (r.TLSKey == "") {
		p = append(p, "relay.tls_cert and relay.tls_key: set both or neither")
	}
	for name, f := range map[string]string{"relay.tls_cert": r.TLSCert, "relay.tls_key": r.TLSKey} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(c.Path(f)); err != nil {
			p = append(p, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if _, err := clientcert.Parse(r.AllowCerts); err != nil {
		p = append(p, "relay.allow_certs: "+err.Error())
	}
	if len(r.AllowCerts) > 0 && r.TLSCert == "" {
		p = append(p, "relay.allow_certs: needs relay.tls_cert and relay.tls_key (clients present certificates after STARTTLS)")
	}
	if r.ClientCA != "" {
		if _, err := r.ClientCAPool(c.Path(r.ClientCA)); err != nil {
			p = append(p, "relay.client_ca: "+err.Error())
		}
	}
	if r.RequireTLS && r.TLSCert == "" {
		p = append(p, "relay.require_tls: needs relay.tls_cert and relay.tls_key")
	}
	if r.MaxMessageSize < 0 {
		p = append(p, "relay.max_message_size: must not be negative")
	}
	if c.Listen.Sink != "" && c.Sink.Domains == "" {
		p = append(p, "sink.domains: required with listen.sink (a file of \"DOMAIN INTENDED\" lines)")
	}
	return p
}
