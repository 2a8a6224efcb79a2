package relay

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// MaxHeaderBytes bounds the header section the relay reads before it
// starts streaming to the next hop. A longer header is forwarded whole, but
// only its first MaxHeaderBytes are examined.
const MaxHeaderBytes = 256 << 10

// Head is what the relay needs from a message's header section.
type Head struct {
	// Raw is the header section as read (wire form, including the empty
	// line that ends it when it was found within the bound).
	Raw []byte
	// Hops counts the Received fields.
	Hops int
	// Fields are the unfolded values of the fields asked for, by
	// lower-case name, in order.
	Fields map[string][]string
}

// ReadHead reads a message's header section from r, up to max bytes,
// counting Received fields and collecting the unfolded values of the
// fields named in want (lower case). The rest of the message stays in r.
// A header without an ending empty line (a message that is all header, or
// one longer than max) is returned as read, without error.
func ReadHead(r *bufio.Reader, max int, want ...string) (Head, error) {
	h := Head{Fields: map[string][]string{}}
	var cur string // lower-case name of the field being collected
	var val strings.Builder
	flush := func() {
		if cur != "" {
			h.Fields[cur] = append(h.Fields[cur], strings.TrimSpace(val.String()))
		}
		cur = ""
		val.Reset()
	}
	midLine := false // the previous piece did not end its line
	for len(h.Raw) < max {
		line, err := r.ReadSlice('\n')
		cont := midLine
		midLine = errors.Is(err, bufio.ErrBufferFull)
		if midLine {
			err = nil // a long line: take it in pieces
		}
		h.Raw = append(h.Raw, line...)
		if cont {
			if cur != "" && val.Len() < 8192 {
				val.Write(bytes.TrimRight(line, "\r\n"))
			}
		} else if len(line) > 0 {
			trim := bytes.TrimRight(line, "\r\n")
			switch {
			case len(trim) == 0 && line[len(line)-1] == '\n':
				flush()
				return h, nil
			case line[0] == ' ' || line[0] == '\t':
				if cur != "" && val.Len() < 8192 {
					val.Write(trim)
				}
			default:
				flush()
				name, value, ok := bytes.Cut(trim, []byte(":"))
				if !ok {
					// Not a header field: the header has ended (a
					// message without the empty line).
					return h, nil
				}
				n := strings.ToLower(string(bytes.TrimRight(name, " \t")))
				if n == "received" {
					h.Hops++
				}
				for _, w := range want {
					if n == w {
						cur = n
						val.Write(value)
					}
				}
			}
		}
		if err != nil {
			flush()
			if errors.Is(err, io.EOF) {
				return h, nil
			}
			return h, err
		}
	}
	flush()
	return h, nil
}
