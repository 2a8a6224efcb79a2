package hold

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testSigner(t testing.TB) *Signer {
	s, err := NewSigner(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLinksAreSignedPerActionAndExpire(t *testing.T) {
	t.Parallel()
	s := testSigner(t)
	now := time.Unix(1_800_000_000, 0)
	q, _ := url.ParseQuery(s.LinkQuery("abc", ActionRelease, now.Add(time.Hour)))
	if err := s.VerifyLink("abc", ActionRelease, q.Get("e"), q.Get("s"), now); err != nil {
		t.Fatalf("valid link: %v", err)
	}
	if err := s.VerifyLink("abc", ActionCancel, q.Get("e"), q.Get("s"), now); err != ErrBadSignature {
		t.Errorf("release signature accepted for cancel: %v", err)
	}
	if err := s.VerifyLink("abd", ActionRelease, q.Get("e"), q.Get("s"), now); err != ErrBadSignature {
		t.Errorf("signature accepted for another message: %v", err)
	}
	if err := s.VerifyLink("abc", ActionRelease, q.Get("e")+"0", q.Get("s"), now); err != ErrBadSignature {
		t.Errorf("extended expiry accepted: %v", err)
	}
	if err := s.VerifyLink("abc", ActionRelease, q.Get("e"), q.Get("s"), now.Add(2*time.Hour)); err != ErrExpired {
		t.Errorf("expired link: %v", err)
	}
	other, _ := NewSigner(bytes.Repeat([]byte{8}, 32))
	if err := other.VerifyLink("abc", ActionRelease, q.Get("e"), q.Get("s"), now); err != ErrBadSignature {
		t.Errorf("another key accepted: %v", err)
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

func TestReleaseHeaderNamesItsRecipientsAndCannotBeForged(t *testing.T) {
	t.Parallel()
	s := testSigner(t)
	now := time.Unix(1_800_000_000, 0)
	h := s.ReleaseHeader("m1", []string{"<B@Gmial.com>", "a@x.org"}, now.Add(time.Minute))
	id, rcpts, err := s.VerifyReleaseHeader(h, now)
	if err != nil || id != "m1" || strings.Join(rcpts, " ") != "a@x.org b@gmial.com" {
		t.Fatalf("got %q %v %v", id, rcpts, err)
	}
	forged := strings.Replace(h, "r=a@x.org,b@gmial.com", "r=a@x.org,b@gmial.com,c@evil.ml", 1)
	if _, _, err := s.VerifyReleaseHeader(forged, now); err != ErrBadSignature {
		t.Errorf("added recipient accepted: %v", err)
	}
	if _, _, err := s.VerifyReleaseHeader(h, now.Add(time.Hour)); err != ErrExpired {
		t.Errorf("stale header accepted: %v", err)
	}
	for _, junk := range []string{"", "id=x", "garbage;;", "id=m1; e=1; r=; s=00"} {
		if _, _, err := s.VerifyReleaseHeader(junk, now); err == nil {
			t.Errorf("%q accepted", junk)
		}
	}
}

func FuzzVerifyReleaseHeader(f *testing.F) {
	s := testSigner(f)
	f.Add(s.ReleaseHeader("m1", []string{"a@b.c"}, time.Unix(1_900_000_000, 0)))
	f.Add("id=; e=; r=; s=")
	f.Fuzz(func(t *testing.T, v string) {
		id, _, err := s.VerifyReleaseHeader(v, time.Unix(1_800_000_000, 0))
		if err == nil && id == "" {
			t.Fatal("verified without an id")
		}
	})
}

func TestStableContentIgnoresWhatTheMTAWritesPerAttempt(t *testing.T) {
	t.Parallel()
	a := "Received: from x\r\n\tby y id AAA1; Mon\r\nMessage-Id: <20261122.AAA1@mta>\r\nDate: Mon, 1\r\nSubject: s\r\n\r\nbody\r\n"
	b := "Received: from x\r\n\tby y id BBB2; Tue\r\nMessage-Id: <20261122.BBB2@mta>\r\nDate: Tue, 2\r\nSubject: s\r\n\r\nbody\r\n"
	if string(stableContent([]byte(a), "AAA1")) != string(stableContent([]byte(b), "BBB2")) {
		t.Errorf("retries differ:\n%q\n%q", stableContent([]byte(a), "AAA1"), stableContent([]byte(b), "BBB2"))
	}
	// A client's own Message-ID and Date are content: two sends differ.
	c := "Message-Id: <one@client>\r\nDate: Mon, 1\r\nSubject: s\r\n\r\nbody\r\n"
	d := "Message-Id: <two@client>\r\nDate: Mon, 1\r\nSubject: s\r\n\r\nbody\r\n"
	if string(stableContent([]byte(c), "AAA1")) == string(stableContent([]byte(d), "BBB2")) {
		t.Error("two distinct messages merged")
	}
}

func TestReplyAddressesAreSignedAndExpire(t *testing.T) {
	t.Parallel()
	s := testSigner(t)
	now := time.Unix(1_800_000_000, 0)
	a := s.ReplyAddress("0123456789abcdef0123456789abcdef", now.Add(time.Hour), "reply.example.org")
	if local := a[:strings.IndexByte(a, '@')]; len(local) > 64 {
		t.Errorf("local part of %d characters (SMTP allows 64)", len(local))
	}
	if id, err := s.VerifyReplyAddress(strings.ToUpper(a), now); err != nil || id != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("valid address: %q %v", id, err)
	}
	if _, err := s.VerifyReplyAddress(a, now.Add(2*time.Hour)); err != ErrExpired {
		t.Errorf("expired: %v", err)
	}
	for _, bad := range []string{strings.Replace(a, "r-0", "r-1", 1), "r-x-1-2@d", "postmaster@reply.example.org", ""} {
		if _, err := s.VerifyReplyAddress(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReplyActionIsTheFirstWordOfTheAnswer(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		"Send\n\n> Your message ...":          ActionRelease,
		"\n  yes, please\n":                   ActionRelease,
		"FIX.\n":                              ActionFix,
		"> quoted send\ncancel it":            ActionCancel,
		"Hello, I think the address is right": "",
		"":                                    "",
	} {
		if got := replyAction(strings.NewReader(body)); got != want {
			t.Errorf("%q: got %q, want %q", body, got, want)
		}
	}
}
