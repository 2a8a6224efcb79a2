package hold

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Preview is a safe text rendering of a message for administrators: the
// main headers and the first text/plain part, at most max bytes, never HTML,
// control characters replaced.
func Preview(raw []byte, max int) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return clean(string(raw[:min(len(raw), max)]))
	}
	var b strings.Builder
	dec := new(mime.WordDecoder)
	for _, h := range []string{"From", "To", "Cc", "Subject", "Date", "Message-Id"} {
		if v := m.Header.Get(h); v != "" {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			b.WriteString(h + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	b.WriteString(textPart(m.Header.Get("Content-Type"), m.Body, 0))
	s := b.String()
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "\n[…]"
	}
	return clean(s)
}

func textPart(ctype string, body io.Reader, depth int) string {
	mt, params, err := mime.ParseMediaType(ctype)
	if ctype == "" || err != nil {
		mt = "text/plain"
	}
	switch {
	case strings.HasPrefix(mt, "multipart/") && depth < 5:
		r := multipart.NewReader(body, params["boundary"])
		for {
			p, err := r.NextPart()
			if err != nil {
				return "[no text part]"
			}
			if t := textPart(p.Header.Get("Content-Type"), p, depth+1); t != "[no text part]" {
				return t
			}
		}
	case mt == "text/plain":
		b, _ := io.ReadAll(io.LimitReader(body, 1<<20))
		return string(b)
	}
	return "[no text part]"
}

func clean(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n") // line ends, not control characters
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r != 0x7f && r != utf8.RuneError) {
			return r
		}
		return '?'
	}, s)
}
