package web

import (
	"regexp"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzCheckPassword: a stored hash is read from the store and parsed; no
// hash, however damaged, may panic or match without being a real hash.
func FuzzCheckPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$2a$04$abcdefghijklmnopqrstuu", "pw")
	f.Add("$argon2id$v=19$m=65536,t=3,p=2$$", "")
	f.Fuzz(func(t *testing.T, hash, password string) {
		// Keep each run fast: skip hashes asking for more than 4 MiB
		// (CheckPassword itself refuses more than 256 MiB).
		if m := memParam.FindStringSubmatch(hash); m != nil {
			if n, err := strconv.Atoi(m[1]); err != nil || n > 4096 {
				return
			}
		}
		ok, err := CheckPassword(hash, password)
		if ok && err != nil {
			t.Fatal("a match with an error")
		}
	})
}

var memParam = regexp.MustCompile(`m=\+?0*(\d{1,9})`)

// FuzzHeaders: the message page reads the header of any held message.
func FuzzHeaders(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n continued\r\n\r\nbody"))
	f.Add([]byte("no colon\r\n\r\n"))
	f.Add([]byte("\xff\xfe: \x00\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		hs, more := headersOf(raw)
		if len(hs) > maxHeaders || more < 0 {
			t.Fatalf("%d headers, %d more", len(hs), more)
		}
		for _, h := range hs {
			if !utf8.ValidString(h.Value) {
				t.Fatalf("invalid UTF-8 value %q", h.Value)
			}
		}
	})
}
