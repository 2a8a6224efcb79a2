// Package clientcert decides whether a TLS client certificate is one that
// the SMTP relay lets relay (relay.allow_certs): by a pinned SHA-256
// fingerprint, or by a DNS name in a certificate that chains to trusted
// roots. It parses the rules and checks a presented chain; it never looks
// at addresses or mail, and never trusts a certificate's common name.
package clientcert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Rules say which TLS client certificates may relay from outside the
// allowed ranges (relay.allow_certs). A rule is one of:
//
//   - "sha256:HEX": the SHA-256 of the client certificate's public key
//     (its SubjectPublicKeyInfo, as relay.next_hop_fingerprint and a DANE
//     "3 1 1" record), colons allowed. The key is pinned: no CA needs to
//     vouch for the certificate, which must be within its validity period,
//     and a renewal that keeps the key keeps the pin.
//   - a DNS name, "relay.example.com": a certificate that chains to
//     ClientCAs (or the system roots) and has exactly this DNS name among
//     its subject alternative names (case-insensitive; the common name is
//     not read, as in every current TLS stack).
//   - "*.example.com": as a name, for a certificate with one DNS name of
//     exactly one more label (x.example.com, not example.com, not
//     a.b.example.com), or with the literal wildcard name *.example.com
//     (Microsoft 365 presents *.mail.protection.outlook.com). A wildcard in
//     the certificate never matches a rule without one: rule
//     relay.example.com is not met by a certificate for *.example.com.
type Rules struct {
	Names        []string   // lower-case, as written (a leading "*." kept)
	Fingerprints [][32]byte // SHA-256 of the leaf's SubjectPublicKeyInfo
	// Roots verify certificates matched by name (nil: the system roots).
	Roots *x509.CertPool
}

// Parse parses relay.allow_certs entries.
func Parse(entries []string) (Rules, error) {
	var r Rules
	var bad []string
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if h, ok := cutPrefixFold(e, "sha256:"); ok {
			fp, err := parseFingerprint(h)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%q: %v", e, err))
				continue
			}
			r.Fingerprints = append(r.Fingerprints, fp)
			continue
		}
		n := strings.ToLower(strings.TrimSuffix(e, "."))
		if err := checkRuleName(n); err != nil {
			bad = append(bad, fmt.Sprintf("%q: %v", e, err))
			continue
		}
		r.Names = append(r.Names, n)
	}
	if len(bad) > 0 {
		return Rules{}, errors.New(strings.Join(bad, "; "))
	}
	return r, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// parseFingerprint reads 64 hex digits, with or without colons.
func parseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	h := strings.ReplaceAll(s, ":", "")
	if len(h) != 64 {
		return fp, fmt.Errorf("want 64 hex digits (SHA-256), got %d", len(h))
	}
	if _, err := hex.Decode(fp[:], []byte(h)); err != nil {
		return fp, fmt.Errorf("not hex: %v", err)
	}
	return fp, nil
}

// checkRuleName accepts a DNS name of at least two labels, optionally
// "*." and a name of at least two labels (no bare "*.com").
func checkRuleName(n string) error {
	base, wild := strings.CutPrefix(n, "*.")
	labels := strings.Split(base, ".")
	if len(labels) < 2 {
		if wild {
			return errors.New("a wildcard needs at least two labels after \"*.\"")
		}
		return errors.New("want a DNS name (relay.example.com), *.example.com or sha256:HEX")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return errors.New("empty or over-long label")
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a DNS name (IDNs in their xn-- form)", c)
			}
		}
	}
	return nil
}

// Empty reports whether no certificate may relay.
func (r Rules) Empty() bool { return len(r.Names) == 0 && len(r.Fingerprints) == 0 }

// Check reports whether a TLS client's certificate chain (leaf first, as
// presented) meets a rule at now; the error says why not.
func (r Rules) Check(chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no client certificate")
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("certificate not valid now (valid %s to %s)", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	fp := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	for _, f := range r.Fingerprints {
		if f == fp {
			return nil
		}
	}
	name := r.matchName(leaf.DNSNames)
	if name == "" {
		return fmt.Errorf("certificate (key sha256:%x, names %v) matches no allowed name or key", fp, leaf.DNSNames)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// A server certificate is accepted as well as a client one: public CAs
	// stop issuing clientAuth, and MTAs present their server certificate.
	_, err := leaf.Verify(x509.VerifyOptions{Roots: r.Roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("certificate for %s not verified: %w", name, err)
	}
	return nil
}

// matchName returns the first of a certificate's DNS names that a name
// rule allows ("" for none).
func (r Rules) matchName(dnsNames []string) string {
	for _, d := range dnsNames {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		for _, rule := range r.Names {
			if NameMatches(rule, d) {
				return d
			}
		}
	}
	return ""
}

// NameMatches: rule (lower-case) against one certificate DNS name
// (lower-case).
func NameMatches(rule, name string) bool {
	if rule == name {
		return true // exact, including a literal wildcard name
	}
	base, ok := strings.CutPrefix(rule, "*.")
	if !ok || strings.Contains(name, "*") {
		return false
	}
	label, rest, ok := strings.Cut(name, ".")
	return ok && label != "" && rest == base
}
