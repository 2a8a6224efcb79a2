package maillog

import (
	"errors"
	"strings"
)

// Exim reads Exim's main log:
//
//	2024-01-02 15:04:05[.mmm] [+zzzz] [[PID]] MSGID FLAG ADDRESS [<ORIG>] FIELDS…
//
// It joins the arrival ("<=": sender, H= client, S= size, id=), the
// deliveries ("=>" and "->" sent, "**" bounced, "==" deferred, "*>"
// suppressed; ":blackhole:" discarded) and "Completed". Exim names no host,
// so messages are keyed by their id alone.
var Exim Format = eximFormat{}

type eximFormat struct{}

func (eximFormat) Name() string { return "exim" }

// ErrEximFlag is a message line whose flag is followed by no address.
var ErrEximFlag = errors.New("exim: flag without an address")

// isEximID reports whether b is an Exim message id: 6-6-2 (before 4.97) or
// 6-11-4 base-62 groups.
func isEximID(b string) bool {
	if len(b) != 16 && len(b) != 23 {
		return false
	}
	p := strings.IndexByte(b, '-')
	q := strings.LastIndexByte(b, '-')
	if p != 6 || q == p || !(len(b) == 16 && q == 13 || len(b) == 23 && q == 18) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if i == p || i == q {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// eximMessage finds the message id after the timestamp and optional pid.
func eximMessage(line string, i int) (id [2]int, rest int, ok bool) {
	if i < len(line) && line[i] == '[' {
		e := strings.IndexByte(line[i:], ']')
		if e < 0 || i+e+1 >= len(line) || line[i+e+1] != ' ' {
			return id, 0, false
		}
		i += e + 2
	}
	sp := strings.IndexByte(line[i:], ' ')
	end := i + sp
	if sp < 0 {
		end = len(line)
	}
	if !isEximID(line[i:end]) {
		return id, 0, false
	}
	return [2]int{i, end}, min(end+1, len(line)), true
}

func (eximFormat) Sniff(line string) bool {
	if len(line) < 20 || line[4] != '-' || line[10] != ' ' {
		return false
	}
	_, i, ok := parseStamp(line)
	if !ok {
		return false
	}
	_, _, ok = eximMessage(line, i)
	return ok
}

// eximFields reads "KEY=value" fields after a delivery's address; a value
// runs to the next KEY= token (H=host (helo) [ip]:port) and may be quoted
// (C="250 OK"). It stops at end or at ": " that starts the reason of a
// failure, returning the reason.
type eximField struct {
	key, val string
}

func isFieldKey(b string) bool {
	if len(b) == 0 || len(b) > 4 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') && b != "id" {
			return false
		}
	}
	return true
}

func eximFields(s string, fields []eximField) ([]eximField, string, bool) {
	for len(s) > 0 {
		for len(s) > 0 && s[0] == ' ' {
			s = s[1:]
		}
		if len(s) == 0 {
			break
		}
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexByte(s, ' ')
		if eq > 0 && (sp < 0 || eq < sp) && isFieldKey(s[:eq]) {
			k := s[:eq]
			v := s[eq+1:]
			var val string
			if len(v) > 0 && v[0] == '"' {
				e := 1
				for e < len(v) && v[e] != '"' {
					if v[e] == '\\' {
						e++
					}
					e++
				}
				val, s = v[1:min(e, len(v))], v[min(e+1, len(v)):]
			} else {
				// To the next " KEY=" token, or a ": " reason.
				e := 0
				for e < len(v) {
					if v[e] == ':' && e+1 < len(v) && v[e+1] == ' ' {
						break
					}
					if v[e] == ' ' {
						next := v[e+1:]
						q := strings.IndexByte(next, '=')
						n := strings.IndexByte(next, ' ')
						if q > 0 && (n < 0 || q < n) && isFieldKey(next[:q]) {
							break
						}
						if strings.HasPrefix(next, "defer (") {
							break
						}
					}
					e++
				}
				val, s = v[:e], v[e:]
			}
			fields = append(fields, eximField{k, val})
			continue
		}
		if s[0] == ':' {
			return fields, strings.TrimSpace(s[1:]), true
		}
		// Free text ("defer (-44)"): skip a word; a reason follows ": ".
		if c := strings.Index(s, ": "); c >= 0 && (sp < 0 || c <= sp) {
			return fields, strings.TrimSpace(s[c+1:]), true
		}
		if sp < 0 {
			break
		}
		s = s[sp:]
	}
	return fields, "", false
}

func (eximFormat) Parse(line string, evs []Event) ([]Event, error) {
	return parseOne(parseExim, line, evs)
}

// parseExim parses one Exim main log line into ev.
func parseExim(line string, ev *Event) (bool, error) {
	st, i, ok := parseStamp(line)
	if !ok {
		if strings.TrimSpace(line) == "" {
			return false, nil
		}
		return false, ErrTimestamp
	}
	id, r, ok := eximMessage(line, i)
	if !ok {
		return false, nil // connections, rejections, daemon messages
	}
	rest := line[r:]
	var status Status
	var kind Kind
	switch {
	case strings.HasPrefix(rest, "<= "):
		kind = HasSender
	case strings.HasPrefix(rest, "=> "), strings.HasPrefix(rest, "-> "):
		kind, status = IsRecipient, Sent
	case strings.HasPrefix(rest, "** "):
		kind, status = IsRecipient, Bounced
	case strings.HasPrefix(rest, "== "):
		kind, status = IsRecipient, Deferred
	case strings.HasPrefix(rest, "*> "):
		kind, status = IsRecipient, Suppressed
	case strings.HasPrefix(rest, "Completed"):
		kind = IsDone
	default:
		return false, nil // "Frozen", "SMTP error…", "removed by…"
	}
	ev.Stamp = st
	ev.Kind = kind
	ev.QueueID = line[id[0]:id[1]]
	if kind == IsDone {
		return true, nil
	}
	body := strings.TrimLeft(rest[3:], " ")
	addr := body
	if sp := strings.IndexByte(body, ' '); sp >= 0 {
		addr, body = body[:sp], body[sp+1:]
	} else {
		body = ""
	}
	if len(addr) == 0 {
		return false, ErrEximFlag
	}
	var fields [12]eximField
	if kind == HasSender {
		if addr == "<>" {
			addr = ""
		}
		ev.From = addr
		fs, _, _ := eximFields(body, fields[:0])
		for _, f := range fs {
			switch f.key {
			case "H":
				ev.Client = f.val
				ev.Kind |= HasClient
			case "S":
				if n, ok := parseSize(f.val); ok {
					ev.Size = n
				}
			case "id":
				ev.MessageID = f.val
				ev.Kind |= HasMessageID
			}
		}
		return true, nil
	}
	// "bad@x.com: Unrouteable address" — the reason follows at once.
	reasonAtOnce := false
	if addr[len(addr)-1] == ':' && addr != ":blackhole:" {
		addr, reasonAtOnce = addr[:len(addr)-1], true
		if len(addr) == 0 {
			return false, ErrEximFlag
		}
	}
	var orig string
	if !reasonAtOnce && len(body) > 0 && body[0] == '<' {
		e := strings.IndexByte(body, '>')
		if e < 0 {
			return false, ErrAddress
		}
		orig = body[1:e]
		body = body[e+1:]
		if len(body) > 0 && body[0] == ':' {
			reasonAtOnce = true
			body = body[1:]
		}
	}
	switch {
	case addr == ":blackhole:":
		if status == Sent {
			status = Discarded
		}
		addr = orig
	case addr[0] == '/' || addr[0] == '|':
		// Delivered to a file or a pipe for the original address.
		ev.Relay = addr
		addr = orig
	case len(orig) > 0 && strings.IndexByte(addr, '@') < 0:
		// A local user name for the original address.
		if status == Sent {
			ev.Relay = "local"
		}
		addr = orig
		orig = ""
	}
	ev.To = addr
	if len(orig) > 0 && orig != addr {
		ev.OrigTo = orig
	}
	ev.Status = status
	if reasonAtOnce {
		ev.Detail = strings.TrimSpace(body)
		return true, nil
	}
	fs, reason, hasReason := eximFields(body, fields[:0])
	transport := ""
	for _, f := range fs {
		switch f.key {
		case "H":
			ev.Relay = f.val
		case "T":
			transport = f.val
		case "C":
			ev.Detail = f.val
		}
	}
	if ev.Relay == "" {
		ev.Relay = transport
	}
	if hasReason {
		ev.Detail = reason
	}
	return true, nil
}
