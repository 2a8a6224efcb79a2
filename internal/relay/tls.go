package relay

import (
	"crypto/tls"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// clientTLS is the TLS configuration the relay offers clients: TLS, plus
// a request for a client certificate whenever the rules in force let
// certificates relay (SetAccess may add or remove them while serving).
// The certificate is not verified in the handshake (a client in the
// allowed ranges may present any, or a self-signed one, and must still
// relay); clientcert.Rules.Check decides at MAIL.
func (s *Server) clientTLS() *tls.Config {
	if s.TLS == nil {
		return nil
	}
	ask := s.TLS.Clone()
	ask.ClientAuth = tls.RequestClientCert
	c := s.TLS.Clone()
	next := c.GetConfigForClient
	c.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if !s.access.Load().certs.Empty() {
			return ask, nil
		}
		if next != nil {
			return next(h)
		}
		return nil, nil
	}
	return c
}

// errNotAllowed refuses MAIL from a client outside the allowed ranges
// without an allowed certificate.
var errNotAllowed = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
	Message: "this relay does not accept mail from you (no allowed client certificate)"}

// mayRelay lets a client in the allowed ranges relay, and one outside them
// only over TLS with a certificate that meets AllowCerts.
func (x *session) mayRelay() error {
	if x.inRange || x.certOK {
		return nil
	}
	st, ok := x.tlsState()
	if !ok {
		x.log.Warn("client outside the allowed ranges sent MAIL without STARTTLS; refused")
		return errNotAllowed
	}
	rules := x.access.certs
	if rules.Empty() {
		x.log.Warn("client outside the allowed ranges; refused")
		return errNotAllowed
	}
	if err := rules.Check(st.PeerCertificates, time.Now()); err != nil {
		x.log.Warn("client certificate not allowed; refused at MAIL", "reason", err.Error())
		return errNotAllowed
	}
	x.certOK = true
	leaf := st.PeerCertificates[0]
	x.log.Info("client allowed by its certificate", "names", strings.Join(leaf.DNSNames, ","), "issuer", leaf.Issuer.String())
	return nil
}

// tlsState is the client's TLS state: smtpConn's when it did STARTTLS
// (DSN on), else go-smtp's.
func (x *session) tlsState() (tls.ConnectionState, bool) {
	if c, ok := x.c.Conn().(*smtpConn); ok {
		return c.TLSConnectionState()
	}
	return x.c.TLSConnectionState()
}
