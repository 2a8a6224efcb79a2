package scan

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzReadState: any input is either refused or a state that writes back
// to JSON that reads again the same.
func FuzzReadState(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"scanned_at":"2026-07-01T03:00:00Z","domains":{"army.ml":{"original":"army.mil","kind":"tld-swap","status":"registered","a":["192.0.2.10"],"aaaa":[],"mx":["mail.army.ml"],"ns":["ns1.army.ml"],"null_mx":false,"accepts_mail":true,"first_seen":"2026-07-01T03:00:00Z","last_seen":"2026-07-01T03:00:00Z"}}}`,
		`{"version":1,"domains":{}}`, `{"version":1,"domains":{"xn--gmil-63d.com":{"status":"wildcard","accepts_mail":null}}}`,
		``, `{`, `null`, `{"version":1,"domains":null}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ReadState(bytes.NewReader(in))
		if err != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := ReadState(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("own output refused: %v\n%s", err, out)
		}
		again, _ := json.Marshal(back)
		if !bytes.Equal(out, again) {
			t.Fatalf("not stable:\n%s\n%s", out, again)
		}
	})
}
