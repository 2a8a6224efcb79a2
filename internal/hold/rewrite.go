package hold

import (
	"bytes"
	"regexp"
	"strings"
)

// rewriteRecipients returns raw with each held address of fixes (lower
// case → suggested address) replaced by its suggestion in the To and Cc
// header fields, so that the recipient of a message sent to the suggested
// address does not see the typo there, and a reply-all does not leak to it
// again. Other fields and the body are kept byte for byte.
func rewriteRecipients(raw []byte, fixes map[string]string) []byte {
	if len(fixes) == 0 {
		return raw
	}
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	var out []byte
	for _, f := range splitFields(raw[:end]) {
		if hasName(f, "to") || hasName(f, "cc") {
			for typo, fix := range fixes {
				f = replaceAddress(f, typo, fix)
			}
		}
		out = append(out, f...)
	}
	return append(out, raw[end:]...)
}

// addrChars are the characters an address is made of: a match must not
// have one of them (or @) right before or after it.
const addrChars = `A-Za-z0-9.!#$%&'*+/=?^_{|}~\x60\-`

// replaceAddress replaces addr (case-insensitively, as a whole address,
// not part of a longer one) by repl in one header field.
func replaceAddress(field []byte, addr, repl string) []byte {
	re := regexp.MustCompile(`(?i)(^|[^` + addrChars + `@])` + regexp.QuoteMeta(addr) + `($|[^` + addrChars + `@])`)
	// Two addresses may share the character between them ("a@x,a@x"):
	// repeat until nothing is left (each pass removes at least one).
	for i := 0; i < 8 && re.Match(field); i++ {
		field = re.ReplaceAll(field, []byte("${1}"+strings.ReplaceAll(repl, "$", "$$")+"${2}"))
	}
	return field
}
