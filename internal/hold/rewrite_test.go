package hold

import (
	"bytes"
	"strings"
	"testing"
)

func TestRewriteRecipientsReplacesOnlyTheWholeTypoInToAndCc(t *testing.T) {
	t.Parallel()
	fixes := map[string]string{"joe@gmial.com": "joe@gmail.com"}
	for _, tc := range []struct{ name, in, want string }{
		{"bare", "To: joe@gmial.com\r\n\r\nbody joe@gmial.com\r\n", "To: joe@gmail.com\r\n\r\nbody joe@gmial.com\r\n"},
		{"display name and case", "To: \"Joe\" <JOE@GMIAL.COM>\r\n\r\n", "To: \"Joe\" <joe@gmail.com>\r\n\r\n"},
		{"list sharing a comma", "Cc: joe@gmial.com,joe@gmial.com\r\n\r\n", "Cc: joe@gmail.com,joe@gmail.com\r\n\r\n"},
		{"folded", "To: ann@example.org,\r\n  joe@gmial.com\r\n\r\n", "To: ann@example.org,\r\n  joe@gmail.com\r\n\r\n"},
		{"longer address kept", "To: bjoe@gmial.com, joe@gmial.com.au\r\n\r\n", "To: bjoe@gmial.com, joe@gmial.com.au\r\n\r\n"},
		{"other fields kept", "From: joe@gmial.com\r\nReply-To: joe@gmial.com\r\nSubject: joe@gmial.com\r\n\r\n", "From: joe@gmial.com\r\nReply-To: joe@gmial.com\r\nSubject: joe@gmial.com\r\n\r\n"},
		{"no body", "To: joe@gmial.com\r\n", "To: joe@gmail.com\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := string(rewriteRecipients([]byte(tc.in), fixes)); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// FuzzRewriteRecipients: any message, any fix; the body is kept byte for
// byte, the header keeps its field count, and nothing panics.
func FuzzRewriteRecipients(f *testing.F) {
	f.Add([]byte("To: joe@gmial.com\r\nCc: a@b, joe@gmial.com\r\n\r\nbody\r\n"), "joe@gmial.com", "joe@gmail.com")
	f.Add([]byte("To: \r\n \r\n\r\n"), "x@y", "$1")
	f.Fuzz(func(t *testing.T, raw []byte, typo, fix string) {
		typo = strings.ToLower(typo)
		if typo == "" {
			return
		}
		out := rewriteRecipients(raw, map[string]string{typo: fix})
		end := bytes.Index(raw, []byte("\r\n\r\n"))
		oend := bytes.Index(out, []byte("\r\n\r\n"))
		if end >= 0 && (oend < 0 || !bytes.Equal(raw[end:], out[oend:])) && !strings.Contains(fix, "\r\n\r\n") {
			t.Fatalf("body changed: %q → %q", raw, out)
		}
		if end < 0 {
			end = len(raw)
		}
		if oend < 0 {
			oend = len(out)
		}
		if !strings.ContainsAny(fix, "\r\n") && len(splitFields(raw[:end])) != len(splitFields(out[:oend])) {
			t.Fatalf("field count changed: %q → %q", raw, out)
		}
	})
}
