// Package testcert makes the self-signed certificates the tests need: for
// 127.0.0.1 and the names given, valid an hour either side of now, usable
// as a server's and a client's certificate and as its own authority. It is
// for tests only.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// New makes a self-signed certificate with serial for 127.0.0.1 and names
// (its common name is the first name, or "stray test").
func New(t testing.TB, serial int64, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cn := "stray test"
	if len(names) > 0 {
		cn = names[0]
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// TLS is New as a tls.Certificate.
func TLS(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	c, k := New(t, 1, names...)
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

// PEM is the certificate and the key, PEM-encoded.
func PEM(t testing.TB, c *x509.Certificate, k *ecdsa.PrivateKey) (cert, key []byte) {
	t.Helper()
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// Write writes New's certificate and key to certPath (0644) and keyPath
// (0600), the key first: a watcher that notices the certificate's change
// then finds the matching key.
func Write(t testing.TB, certPath, keyPath string, serial int64, names ...string) *x509.Certificate {
	t.Helper()
	c, k := New(t, serial, names...)
	cb, kb := PEM(t, c, k)
	if err := os.WriteFile(keyPath, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, cb, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}
