package maillog

import (
	"errors"
	"strings"
)

// Exchange reads Microsoft Exchange (2013 to 2019, and Exchange Online
// exports) message tracking logs, MSGTRK*.LOG: comma-separated rows whose
// columns a "#Fields:" header names. A row is self-contained (it carries
// the sender, the Message-ID and every recipient), so each recipient of a
// SEND (to the next hop over SMTP), DELIVER (into a mailbox), FAIL, DEFER
// or DROP row is one delivery attempt: sent, sent, bounced, deferred,
// discarded. Messages are keyed by server and internal-message-id.
var Exchange Format = exchangeFormat{cols: defaultExchangeColumns}

// defaultExchangeColumns is Exchange 2013–2019's column order, used when a
// log has no "#Fields:" header in its first lines.
var defaultExchangeColumns = exchangeColumns(strings.Split("date-time,client-ip,client-hostname,server-ip,server-hostname,"+
	"source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"+
	"recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,"+
	"return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,"+
	"transport-traffic-type,log-id,schema-version", ","))

// Column indexes of the fields this package reads (-1 when absent).
type exchangeCols struct {
	time, clientIP, clientHost, serverIP, serverHost, source, event, internalID, messageID,
	recipients, statuses, bytes, sender, n int
}

func exchangeColumns(names []string) exchangeCols {
	c := exchangeCols{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, len(names)}
	for i, n := range names {
		switch strings.TrimSpace(n) {
		case "date-time":
			c.time = i
		case "client-ip":
			c.clientIP = i
		case "client-hostname":
			c.clientHost = i
		case "server-ip":
			c.serverIP = i
		case "server-hostname":
			c.serverHost = i
		case "source":
			c.source = i
		case "event-id":
			c.event = i
		case "internal-message-id":
			c.internalID = i
		case "message-id":
			c.messageID = i
		case "recipient-address":
			c.recipients = i
		case "recipient-status":
			c.statuses = i
		case "total-bytes":
			c.bytes = i
		case "sender-address":
			c.sender = i
		}
	}
	return c
}

type exchangeFormat struct{ cols exchangeCols }

func (exchangeFormat) Name() string { return "exchange" }

const bom = "\ufeff"

func (exchangeFormat) Sniff(line string) bool {
	line = strings.TrimPrefix(line, bom)
	if strings.HasPrefix(line, "#Log-type: Message Tracking Log") || strings.HasPrefix(line, "#Fields: date-time,") ||
		strings.HasPrefix(line, "#Software: Microsoft Exchange") {
		return true
	}
	_, ok := parseISOField(line[:max(0, strings.IndexByte(line, ','))])
	return ok && strings.Count(line, ",") >= 10
}

// ForInput reads the columns from the input's "#Fields:" header.
func (f exchangeFormat) ForInput(head string) Format {
	for head != "" {
		line := head
		if nl := strings.IndexByte(head, '\n'); nl >= 0 {
			line, head = head[:nl], head[nl+1:]
		} else {
			head = ""
		}
		line = strings.TrimSuffix(strings.TrimPrefix(line, bom), "\r")
		if rest, ok := strings.CutPrefix(line, "#Fields:"); ok {
			return exchangeFormat{cols: exchangeColumns(strings.Split(strings.TrimSpace(rest), ","))}
		}
		if !strings.HasPrefix(line, "#") {
			break
		}
	}
	return f
}

// Errors of malformed Exchange rows.
var (
	ErrColumns = errors.New("exchange: fewer columns than the #Fields header names")
	ErrQuote   = errors.New("exchange: unterminated quote")
	ErrNoID    = errors.New("exchange: row without internal-message-id or message-id")
)

// splitCSV splits one CSV row; quoted fields may hold commas and doubled
// quotes. Unquoted fields are substrings of line; a quoted field with
// doubled quotes is unescaped (a copy).
func splitCSV(line string, out []string) ([]string, error) {
	for {
		if strings.HasPrefix(line, `"`) {
			var b strings.Builder
			i := 1
			start := 1
			for {
				j := strings.IndexByte(line[i:], '"')
				if j < 0 {
					return out, ErrQuote
				}
				i += j
				if i+1 < len(line) && line[i+1] == '"' { // "" is a quote
					b.WriteString(line[start : i+1])
					i += 2
					start = i
					continue
				}
				break
			}
			field := line[start:i]
			if b.Len() > 0 {
				b.WriteString(field)
				field = b.String()
			}
			out = append(out, field)
			line = line[i+1:]
			if line == "" {
				return out, nil
			}
			if line[0] != ',' {
				return out, ErrQuote
			}
			line = line[1:]
			continue
		}
		c := strings.IndexByte(line, ',')
		if c < 0 {
			return append(out, line), nil
		}
		out = append(out, line[:c])
		line = line[c+1:]
	}
}

// exchangeStatus maps a row's event to a delivery status.
var exchangeStatus = map[string]Status{
	"SEND":    Sent,
	"DELIVER": Sent,
	"FAIL":    Bounced,
	"DEFER":   Deferred,
	"DROP":    Discarded,
}

func (f exchangeFormat) Parse(line string, evs []Event) ([]Event, error) {
	line = strings.TrimPrefix(line, bom)
	if line == "" || line[0] == '#' {
		return evs, nil
	}
	var buf [32]string
	fields, err := splitCSV(line, buf[:0])
	if err != nil {
		return evs, err
	}
	c := &f.cols
	if len(fields) < c.n {
		return evs, ErrColumns
	}
	get := func(i int) string {
		if i < 0 {
			return ""
		}
		return fields[i]
	}
	status, ok := exchangeStatus[get(c.event)]
	if !ok {
		return evs, nil // RECEIVE, SUBMIT, EXPAND, RESOLVE, TRANSFER, DSN, AGENTINFO…
	}
	st, ok := parseISOField(get(c.time))
	if !ok {
		return evs, ErrTimestamp
	}
	// The logging server is the server of a row, except in SEND rows,
	// whose server is the next hop and whose client the logging server.
	relay, host, client := get(c.source), get(c.serverHost), hostIP(get(c.clientHost), get(c.clientIP))
	if get(c.event) == "SEND" {
		relay, host = hostIP(get(c.serverHost), get(c.serverIP)), get(c.clientHost)
	}
	var size int64 = -1
	if n, ok := parseSize(get(c.bytes)); ok {
		size = n
	}
	qid := get(c.internalID)
	if qid == "" {
		qid = get(c.messageID)
	}
	if qid == "" {
		return evs, ErrNoID
	}
	statuses := strings.Split(get(c.statuses), ";")
	rcpts := get(c.recipients)
	for i := 0; rcpts != ""; i++ {
		to := rcpts
		if k := strings.IndexByte(rcpts, ';'); k >= 0 {
			to, rcpts = rcpts[:k], rcpts[k+1:]
		} else {
			rcpts = ""
		}
		if to == "" {
			continue
		}
		detail := statuses[0]
		if len(statuses) > i {
			detail = statuses[i]
		}
		evs = append(evs, Event{
			// A row is whole: it needs no state, only its sender.
			Stamp: st, Kind: HasSender | IsRecipient,
			Host: host, QueueID: qid,
			Client: client, MessageID: get(c.messageID), From: get(c.sender), Size: size,
			To: to, Relay: relay, DSN: enhancedCode(detail), Status: status, Detail: detail,
		})
	}
	return evs, nil
}

// hostIP writes "host[ip]" as Postfix does.
func hostIP(host, ip string) string {
	switch {
	case ip == "":
		return host
	case host == "":
		return "[" + ip + "]"
	}
	return host + "[" + ip + "]"
}

// enhancedCode finds the "2.6.0" in "250 2.6.0 <id> Queued mail".
func enhancedCode(s string) string {
	for _, w := range strings.Fields(s) {
		if len(w) >= 5 && w[1] == '.' && (w[0] == '2' || w[0] == '4' || w[0] == '5') && strings.Count(w, ".") == 2 {
			return w
		}
	}
	return ""
}

// parseISOField parses a whole field "2024-03-01T10:00:02.412Z".
func parseISOField(s string) (Stamp, bool) {
	var st Stamp
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' {
		return st, false
	}
	y, ok1 := digits(s, 4)
	m, ok2 := digits(s[5:], 2)
	d, ok3 := digits(s[8:], 2)
	if !ok1 || !ok2 || !ok3 || y == 0 || !validDate(y, m, d) {
		return st, false
	}
	st.Year, st.Month, st.Day = y, m, d
	n, ok := parseClock(s[11:], &st)
	if !ok {
		return st, false
	}
	i := 11 + n
	if i < len(s) {
		z, ok := parseZone(s[i:], &st)
		if !ok || i+z != len(s) {
			return st, false
		}
	}
	return st, true
}
