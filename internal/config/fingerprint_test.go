package config

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseFingerprintTakesSha256HexWithOrWithoutColons(t *testing.T) {
	t.Parallel()
	hexs := strings.Repeat("0a", 32)
	for in, ok := range map[string]bool{
		"sha256:" + hexs:                             true,
		"SHA256:" + strings.ToUpper(hexs):            true,
		"sha256:" + strings.Repeat("0A:", 31) + "0A": true,
		" sha256:" + hexs + " ":                      true,
		hexs:                                         false,
		"sha1:" + hexs:                               false,
		"sha256:" + hexs[:62]:                        false,
		"sha256:zz" + hexs[2:]:                       false,
	} {
		f, err := ParseFingerprint(in)
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok %v", in, err, ok)
		}
		if ok && hex.EncodeToString(f[:]) != hexs {
			t.Errorf("%q: %x", in, f)
		}
	}
}

// FuzzParseFingerprint: anything either is refused or is 32 bytes that
// print back ("sha256:" and lower-case hex) to a pin that parses the same.
func FuzzParseFingerprint(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("0a", 32), "SHA256:" + strings.Repeat("AB:", 31) + "AB", "sha256:", "0a0b", "sha256:zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		again, err := ParseFingerprint("sha256:" + hex.EncodeToString(fp[:]))
		if err != nil || again != fp {
			t.Fatalf("%q parsed as %x, which does not parse back: %x %v", s, fp, again, err)
		}
	})
}
