package maillog

import (
	"fmt"
	"time"
)

// Status is the outcome of one delivery attempt for one recipient.
type Status uint8

const (
	// StatusOther is an outcome this package does not know.
	StatusOther Status = iota
	// Sent: the next hop or the mailbox accepted the message.
	Sent
	// Bounced: refused for good; the sender gets a bounce.
	Bounced
	// Deferred: failed for now; tried again later.
	Deferred
	// Expired: deferred too long, returned to the sender.
	Expired
	// Discarded: accepted and thrown away (Postfix's discard transport,
	// Exim's :blackhole:); nothing left the server.
	Discarded
	// Verified: an address-verification probe or sendmail -bv, whatever
	// its answer; no message was delivered.
	Verified
	// Suppressed: not delivered on purpose (Exim's *>, delivery
	// suppressed by -N).
	Suppressed
	// NumStatus is the number of statuses.
	NumStatus
)

var statusNames = [...]string{"other", "sent", "bounced", "deferred", "expired", "discarded", "verified", "suppressed"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (saved audit reports
// are read back).
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if string(b) == n {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("maillog: unknown status %q", b)
}

// Statuses lists every status in order.
func Statuses() []Status {
	out := make([]Status, NumStatus)
	for i := range out {
		out[i] = Status(i)
	}
	return out
}

// Delivery is one delivery attempt for one recipient, with what the log
// said about its message before it. Its strings may share memory with the
// block of log they were read from: strings.Clone those kept for long, so
// as not to keep a whole block alive for each.
type Delivery struct {
	Time time.Time
	// Host is the host that logged the line ("" when the format has no
	// host field); together with QueueID it names the message.
	Host    string
	QueueID string
	// Client is the client that submitted the message, as logged
	// ("host[ip]"); "" when unknown.
	Client string
	// From is the envelope sender, "" for the null sender (bounces).
	// SenderKnown is false when the log held no sender line for this
	// message (it was before the first file, or evicted).
	From        string
	SenderKnown bool
	To          string
	// OrigTo is the recipient before alias or virtual expansion ("" when
	// it was not rewritten).
	OrigTo string
	// Relay is the next hop ("mx.example.com[192.0.2.1]:25", "local",
	// "none").
	Relay  string
	DSN    string
	Status Status
	// Detail is the outcome's text (the remote reply, the reason).
	Detail string
	// Size in bytes, -1 when unknown.
	Size      int64
	MessageID string
	// File and Line locate the delivery's line.
	File string
	Line int64
}

// Delivered reports whether the message reached the recipient's side.
func (d *Delivery) Delivered() bool { return d.Status == Sent }

// Kind says what an Event carries; a line may carry several.
type Kind uint8

const (
	// HasClient: Client is set.
	HasClient Kind = 1 << iota
	// HasMessageID: MessageID is set.
	HasMessageID
	// HasSender: From is set (and Size when not -1).
	HasSender
	// IsRecipient: a delivery attempt for To.
	IsRecipient
	// IsDone: the message is finished; its state can go.
	IsDone
)

// Event is what one log line says about one message. A Format fills it
// from a line; the reader joins events by (Host, QueueID). Its strings are
// usually substrings of the line (which is itself a substring of the
// block of log being parsed): cheap, and safe to keep, though keeping one
// keeps its block; the reader copies what it holds on to.
type Event struct {
	Stamp   Stamp
	Kind    Kind
	Host    string
	QueueID string

	Client    string
	MessageID string
	From      string
	Size      int64 // -1 when unknown

	To, OrigTo, Relay, DSN, Detail string
	Status                         Status

	line int32 // line number within its block, set by the reader
}

// Format is one kind of mail log. Implementations must be safe for
// concurrent use: lines are parsed in parallel.
type Format interface {
	// Name is the format's name in flags and messages ("postfix").
	Name() string
	// Sniff reports whether a line looks like this format; the reader
	// picks, per input, the format most of its first lines match.
	Sniff(line string) bool
	// Parse parses one line, without its line ending, and appends the
	// events it carries to evs, returning the longer slice: most lines
	// carry none or one, an Exchange row one per recipient. Each new
	// event starts as NewEvent. A line that carries no mail event
	// (another program's line, a connect, a statistic) appends nothing.
	// An error means the line claims to be this format but cannot be
	// read: what it appended is dropped, and the line is counted,
	// sampled with its line number and skipped.
	Parse(line string, evs []Event) ([]Event, error)
}

// Preparer is implemented by a Format whose lines depend on its input's
// header (Exchange's "#Fields:" line names the columns): the reader calls
// ForInput with the start of each input and parses that input with the
// Format returned.
type Preparer interface {
	ForInput(head string) Format
}

// NewEvent is a zero event with an unknown size.
func NewEvent() Event { return Event{Size: -1} }

// parseOne adapts a parser of at most one event per line to Format.Parse.
func parseOne(parse func(string, *Event) (bool, error), line string, evs []Event) ([]Event, error) {
	evs = append(evs, NewEvent())
	ok, err := parse(line, &evs[len(evs)-1])
	if !ok || err != nil {
		return evs[:len(evs)-1], err
	}
	return evs, nil
}

// Formats lists the built-in formats.
func Formats() []Format { return []Format{Postfix, Exim, Exchange} }

// FormatByName returns the built-in format with that name.
func FormatByName(name string) (Format, error) {
	for _, f := range Formats() {
		if f.Name() == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("maillog: unknown log format %q (want postfix, exim or exchange)", name)
}

// LineError is a malformed line: where, why, and how it began.
type LineError struct {
	File string
	Line int64
	Err  error
	Text string // the line's start, for people
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v: %q", e.File, e.Line, e.Err, e.Text)
}

func (e *LineError) Unwrap() error { return e.Err }
