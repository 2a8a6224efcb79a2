package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// Token format: "stray_<id>_<secret>".
const (
	tokenPrefix  = "stray_"
	idLen        = 12 // NewToken's IDs; ParseToken accepts 8–32 (store.Token)
	minSecretLen = 16
	maxSecretLen = 128
)

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken makes an API token called name: a random 12-character ID of
// [0-9a-z] and a random 32-byte secret (52 characters of lower-case
// base32). plaintext, "stray_<id>_<secret>", is what the client sends; show
// it once and forget it. tok is what the store keeps: the ID and the hex
// SHA-256 of the secret, never the secret.
func NewToken(name, createdBy string) (plaintext string, tok store.Token, err error) {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	id := make([]byte, 0, idLen)
	var buf [32]byte
	for len(id) < idLen {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", store.Token{}, err
		}
		for _, b := range buf {
			// 252 = 7·36: rejecting the rest keeps every character equally likely.
			if b < 252 && len(id) < idLen {
				id = append(id, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", store.Token{}, err
	}
	secret := secretEncoding.EncodeToString(raw[:])
	tok = store.Token{
		ID:        string(id),
		Name:      name,
		Hash:      HashSecret(secret),
		CreatedBy: createdBy,
		CreatedAt: time.Now().UTC().Truncate(time.Second),
	}
	return tokenPrefix + tok.ID + "_" + secret, tok, nil
}

// ParseToken splits a token "stray_<id>_<secret>" into its ID (8–32 of
// [0-9a-z]) and secret (16–128 of [0-9a-z]).
func ParseToken(s string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) < 8 || len(id) > 32 || len(secret) < minSecretLen || len(secret) > maxSecretLen ||
		!lowerAlnum(id) || !lowerAlnum(secret) {
		return "", "", false
	}
	return id, secret, true
}

func lowerAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// HashSecret is what the store keeps of a token's secret: the hex SHA-256
// of its text.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// authenticate checks the request's bearer token. It returns the token's
// ID, or a status (401, 429, 503) and a message for the client; for 401 and
// 429 it sets WWW-Authenticate or Retry-After in rh, the response header.
// A client that has used up its failed authentications gets 429 for any
// token not already in the cache, so that guessing stays slow and never
// reaches the store.
func (s *Server) authenticate(r *http.Request, rh http.Header) (id string, code int, msg string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		rh.Set("WWW-Authenticate", `Bearer realm="stray"`)
		return "", http.StatusUnauthorized, "missing bearer token (Authorization: Bearer stray_...)"
	}
	now := s.now()
	failed := func(why, tokenID string) (string, int, string) {
		client := s.clientKey(r)
		if s.authFail != nil {
			if ok, retry := s.authFail.take(client, now); !ok {
				// Logged quietly: a flood must not flood the log.
				s.log.Debug("api: authentication failed, client limited", "client", client, "token_id", tokenID, "why", why)
				rh.Set("Retry-After", retryAfter(retry))
				return "", http.StatusTooManyRequests, "too many failed authentications: retry later"
			}
		}
		s.log.Info("api: authentication failed", "client", client, "token_id", tokenID, "why", why)
		rh.Set("WWW-Authenticate", `Bearer realm="stray", error="invalid_token"`)
		return "", http.StatusUnauthorized, "invalid or unknown token"
	}
	scheme, cred, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return failed("not a bearer token", "")
	}
	id, secret, ok := ParseToken(strings.TrimSpace(cred))
	if !ok {
		return failed("malformed token", "")
	}
	sum := HashSecret(secret)
	if e, ok := s.cache.get(id, now); ok {
		if subtle.ConstantTimeCompare([]byte(sum), []byte(e.hash)) == 1 {
			return id, 0, ""
		}
		return failed("wrong secret", id)
	}
	if s.authFail != nil {
		if ok, retry := s.authFail.peek(s.clientKey(r), now); !ok {
			rh.Set("Retry-After", retryAfter(retry))
			return "", http.StatusTooManyRequests, "too many failed authentications: retry later"
		}
	}
	tok, err := s.cfg.Tokens.GetToken(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return failed("unknown token", id)
	case err != nil:
		s.log.Warn("api: token lookup failed", "token_id", id, "err", err)
		return "", http.StatusServiceUnavailable, "cannot check the token right now: retry later"
	case tok == nil:
		return failed("unknown token", id)
	}
	stored := strings.ToLower(tok.Hash)
	if len(stored) != sha256.Size*2 || subtle.ConstantTimeCompare([]byte(sum), []byte(stored)) != 1 {
		return failed("wrong secret", id)
	}
	s.cache.put(id, stored, now)
	return id, 0, ""
}

// tokenCache remembers verified tokens (ID → hash of the secret) for a
// while, so that most requests do not wait for the store. It is bounded:
// when full, expired entries go first, then arbitrary ones.
type tokenCache struct {
	mu  sync.Mutex
	ttl time.Duration // ≤ 0: nothing is cached
	max int
	m   map[string]cacheEntry
}

type cacheEntry struct {
	hash    string
	expires time.Time
}

func newTokenCache(ttl time.Duration, max int) *tokenCache {
	return &tokenCache{ttl: ttl, max: max, m: map[string]cacheEntry{}}
}

func (c *tokenCache) get(id string, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if ok && !now.Before(e.expires) {
		delete(c.m, id)
		return cacheEntry{}, false
	}
	return e, ok
}

func (c *tokenCache) put(id, hash string, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[id] = cacheEntry{hash: hash, expires: now.Add(c.ttl)}
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
