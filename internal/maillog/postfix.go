package maillog

import (
	"errors"
	"strings"
)

// Postfix reads Postfix logs: syslog's and maillog_file's
//
//	TIMESTAMP HOST SYSLOG_NAME/DAEMON[PID]: QUEUEID: MESSAGE
//
// It joins smtpd's client=, cleanup's message-id=, qmgr's (and pickup's)
// from= and size=, each delivery agent's to=… status= and qmgr's removed.
// Lines without a queue id (connect, NOQUEUE rejects, statistics) and other
// programs' lines are skipped.
var Postfix Format = postfixFormat{}

type postfixFormat struct{}

func (postfixFormat) Name() string { return "postfix" }

func (postfixFormat) Sniff(line string) bool {
	_, i, ok := parseStamp(line)
	if !ok {
		return false
	}
	_, _, _, ok = postfixProgram(line, i)
	return ok
}

// Errors of malformed lines.
var (
	ErrTimestamp = errors.New("no timestamp")
	ErrNoProgram = errors.New("no host and program after the timestamp")
	ErrAddress   = errors.New("unterminated address")
	ErrNoStatus  = errors.New("delivery line without status=")
	ErrBadSize   = errors.New("bad size=")
	ErrLongLine  = errors.New("line longer than the limit")
)

// postfixProgram finds "HOST PROGRAM[PID]: " after the timestamp ending at
// i. It returns the host, the daemon (the program's last "/" component),
// the offset of the message, and whether the program is Postfix-shaped
// ("syslog_name/daemon").
func postfixProgram(line string, i int) (host, daemon string, msg int, ok bool) {
	sp := strings.IndexByte(line[i:], ' ')
	if sp <= 0 {
		return "", "", 0, false
	}
	host = line[i : i+sp]
	p := i + sp + 1
	colon := strings.Index(line[p:], ": ")
	if colon <= 0 {
		return "", "", 0, false
	}
	prog := line[p : p+colon]
	if b := strings.IndexByte(prog, '['); b >= 0 {
		if prog[len(prog)-1] != ']' {
			return "", "", 0, false
		}
		prog = prog[:b]
	}
	slash := strings.LastIndexByte(prog, '/')
	if slash <= 0 || slash == len(prog)-1 || strings.IndexByte(prog, ' ') >= 0 {
		return "", "", 0, false
	}
	return host, prog[slash+1:], p + colon + 2, true
}

// isQueueID reports whether b is a Postfix queue id: short (upper-case hex)
// or long (enable_long_queue_ids: seconds and microseconds in base 52,
// 'z', the inode number in base 51; letters and digits without vowels).
func isQueueID(b string) bool {
	if len(b) < 5 || len(b) > 24 {
		return false
	}
	hex := true
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			hex = false
			switch c {
			case 'A', 'E', 'I', 'O', 'U', 'a', 'e', 'i', 'o', 'u':
				return false
			}
		default:
			return false
		}
	}
	return hex || len(b) >= 12 && strings.IndexByte(b, 'z') >= 10
}

// cutAddr reads an address up to its closing '>' (s starts just after
// '<'), stepping over a quoted local part. It returns the address's end
// and the offset after '>'.
func cutAddr(s string) (int, int, bool) {
	i := 0
	if len(s) > 0 && s[0] == '"' {
		for i = 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				break
			}
		}
	}
	i = min(i, len(s))
	j := strings.IndexByte(s[i:], '>')
	if j < 0 {
		return 0, 0, false
	}
	return i + j, i + j + 1, true
}

func parseSize(b string) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

var statusWords = map[string]Status{
	"sent":          Sent,
	"bounced":       Bounced,
	"deferred":      Deferred,
	"expired":       Expired,
	"deliverable":   Verified,
	"undeliverable": Verified,
	"SOFTBOUNCE":    Deferred,
}

func (postfixFormat) Parse(line string, evs []Event) ([]Event, error) {
	return parseOne(parsePostfix, line, evs)
}

// parsePostfix parses one Postfix line into ev.
func parsePostfix(line string, ev *Event) (bool, error) {
	st, i, ok := parseStamp(line)
	if !ok {
		if strings.TrimSpace(line) == "" {
			return false, nil
		}
		return false, ErrTimestamp
	}
	host, daemon, m, ok := postfixProgram(line, i)
	if !ok {
		if strings.IndexByte(line[i:], ' ') < 0 {
			return false, ErrNoProgram
		}
		return false, nil // another program's line
	}
	msg := line[m:]
	c := strings.IndexByte(msg, ':')
	if c < 0 || c+1 >= len(msg) || msg[c+1] != ' ' || !isQueueID(msg[:c]) {
		return false, nil // connect, NOQUEUE, warning, statistics…
	}
	body := msg[c+2:]
	var kind Kind
	switch {
	case strings.HasPrefix(body, "to=<"):
		kind = IsRecipient
	case strings.HasPrefix(body, "from=<"):
		kind = HasSender
	case strings.HasPrefix(body, "client="):
		kind = HasClient
	case strings.HasPrefix(body, "message-id="):
		kind = HasMessageID
	case body == "removed":
		kind = IsDone
	case strings.HasPrefix(body, "uid=") && strings.Contains(body, " from=<"):
		// pickup: "uid=0 from=<root>"
		kind = HasSender
	default:
		return false, nil
	}
	ev.Stamp = st
	ev.Kind = kind
	ev.Host = host
	ev.QueueID = msg[:c]
	switch kind {
	case HasClient:
		v := body[len("client="):]
		if k := strings.IndexByte(v, ','); k >= 0 {
			v = v[:k]
		}
		ev.Client = v
	case HasMessageID:
		ev.MessageID = strings.TrimSpace(body[len("message-id="):])
	case HasSender:
		a := body[strings.Index(body, "from=<")+6:]
		end, next, ok := cutAddr(a)
		if !ok {
			return false, ErrAddress
		}
		ev.From = a[:end]
		rest := a[next:]
		if j := strings.Index(rest, ", size="); j >= 0 {
			v := rest[j+7:]
			if e := strings.IndexByte(v, ','); e >= 0 {
				v = v[:e]
			}
			n, ok := parseSize(v)
			if !ok {
				return false, ErrBadSize
			}
			ev.Size = n
		}
	case IsRecipient:
		if err := parseRecipient(body, ev); err != nil {
			return false, err
		}
		if daemon == "discard" && ev.Status == Sent {
			ev.Status = Discarded
		}
	}
	return true, nil
}

// parseRecipient reads "to=<A>[, orig_to=<B>], relay=R, …, dsn=D,
// status=WORD (DETAIL)".
func parseRecipient(body string, ev *Event) error {
	a := body[4:]
	end, next, ok := cutAddr(a)
	if !ok {
		return ErrAddress
	}
	ev.To = a[:end]
	rest := a[next:]
	for {
		if !strings.HasPrefix(rest, ", ") {
			return ErrNoStatus
		}
		rest = rest[2:]
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return ErrNoStatus
		}
		key := rest[:eq]
		v := rest[eq+1:]
		if key == "status" {
			w := v
			if sp := strings.IndexByte(v, ' '); sp >= 0 {
				w = v[:sp]
				d := strings.TrimSpace(v[sp+1:])
				if len(d) >= 2 && d[0] == '(' && d[len(d)-1] == ')' {
					d = d[1 : len(d)-1]
				}
				ev.Detail = d
			}
			ev.Status = statusWords[w]
			return nil
		}
		var val string
		if len(v) > 0 && v[0] == '<' {
			e, n, ok := cutAddr(v[1:])
			if !ok {
				return ErrAddress
			}
			val, rest = v[1:1+e], v[1+n:]
		} else {
			e := strings.Index(v, ", ")
			if e < 0 {
				return ErrNoStatus
			}
			val, rest = v[:e], v[e:]
		}
		switch key {
		case "orig_to":
			ev.OrigTo = val
		case "relay":
			ev.Relay = val
		case "dsn":
			ev.DSN = val
		}
	}
}
