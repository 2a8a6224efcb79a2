package hold

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Actions a sender's link can take.
const (
	ActionRelease = "release" // send anyway, to the held recipients
	ActionCancel  = "cancel"  // discard
	ActionFix     = "fix"     // send to the suggested addresses instead
)

// Signer signs and verifies links and release headers with HMAC-SHA256.
// Nothing it signs is secret; the signature proves stray made it and it has
// not expired.
type Signer struct {
	key []byte
}

// NewSigner makes a Signer; the key must be at least 32 bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("hold: signing key of %d bytes, want at least 32", len(key))
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

func (s *Signer) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Errors from verification.
var (
	ErrBadSignature = errors.New("hold: bad signature")
	ErrExpired      = errors.New("hold: link expired")
)

// LinkQuery is the signed query string for an action on a held message:
// e=EXPIRY&s=SIGNATURE.
func (s *Signer) LinkQuery(id, action string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return "e=" + e + "&s=" + s.mac("link", id, action, e)
}

// VerifyLink checks a link's expiry and signature.
func (s *Signer) VerifyLink(id, action, e, sig string, now time.Time) error {
	if !hmac.Equal([]byte(sig), []byte(s.mac("link", id, action, e))) {
		return ErrBadSignature
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if now.Unix() > exp {
		return ErrExpired
	}
	return nil
}

// ReleaseHeaderName is the header a re-injected message carries.
const ReleaseHeaderName = "X-Stray-Release"

// ReleaseHeader is the value of the header a released message carries when
// it is re-injected: the message id, the recipients it releases, an expiry
// and a signature over them. The gate lets those recipients through once.
func (s *Signer) ReleaseHeader(id string, rcpts []string, exp time.Time) string {
	r := normRcpts(rcpts)
	e := strconv.FormatInt(exp.Unix(), 10)
	return fmt.Sprintf("id=%s; e=%s; r=%s; s=%s", id, e, strings.Join(r, ","), s.mac("release", id, e, strings.Join(r, ",")))
}

// VerifyReleaseHeader checks a release header and returns the message id
// and the recipients it releases.
func (s *Signer) VerifyReleaseHeader(v string, now time.Time) (id string, rcpts []string, err error) {
	fields := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, ErrBadSignature
		}
		fields[k] = val
	}
	id, e, r, sig := fields["id"], fields["e"], fields["r"], fields["s"]
	if id == "" || e == "" || sig == "" {
		return "", nil, ErrBadSignature
	}
	if !hmac.Equal([]byte(sig), []byte(s.mac("release", id, e, r))) {
		return "", nil, ErrBadSignature
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || now.Unix() > exp {
		return "", nil, ErrExpired
	}
	if r != "" {
		rcpts = strings.Split(r, ",")
	}
	return id, rcpts, nil
}

func normRcpts(rcpts []string) []string {
	out := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		out = append(out, strings.ToLower(strings.Trim(strings.TrimSpace(r), "<>")))
	}
	sort.Strings(out)
	return out
}

// LoadOrCreateKey reads a signing key file (hex), creating it with a new
// random 32-byte key (mode 0600) when it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) { // another node created it first
				return LoadOrCreateKey(path)
			}
			return nil, fmt.Errorf("hold: creating key: %w", err)
		}
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("hold: writing key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hold: reading key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("hold: key file %s: want at least 64 hex digits", path)
	}
	return key, nil
}
