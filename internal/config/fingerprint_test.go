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
