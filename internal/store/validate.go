package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits shared by both backends, so that what one accepts the other does
// too.
const (
	maxIDLen        = 64
	defaultList     = 100
	defaultEvents   = 1000
	defaultDueLimit = 100
)

// nowStamp is the store's clock, truncated to the precision both backends keep.
func nowStamp() time.Time { return stamp(time.Now()) }

// stamp truncates t to microseconds (PostgreSQL's timestamp precision, and
// the unit SQLite stores) and puts it in UTC, so a time reads back Equal and
// identical from either backend.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

// checkID accepts what can safely travel in a URL and a log line.
func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("empty message id")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("message id longer than %d bytes", maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return fmt.Errorf("message id %q: want only [0-9A-Za-z_-]", id)
		}
	}
	return nil
}

// checkText rejects what PostgreSQL cannot store in a text column (NUL,
// invalid UTF-8) so that both backends accept exactly the same values and
// nothing is stored altered: the envelope is used to re-inject the message,
// so a "cleaned" address would be a wrong address.
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains a NUL byte", field)
	}
	return nil
}

func checkState(s State) error {
	switch s {
	case StateHeld, StateReleasing, StateReleased, StateDiscarded, StateExpired:
		return nil
	}
	return fmt.Errorf("unknown state %q", s)
}

// heldRow is a Message prepared for insertion: validated, defaults filled,
// recipients encoded and Raw compressed.
type heldRow struct {
	recipients []byte // JSON array
	raw        []byte // compressed
}

// prepareHold validates m and ev and fills their defaults in place: State
// held, Size, CreatedAt (now), UpdatedAt (CreatedAt), and the event's
// MessageID, Kind ("held") and Time (CreatedAt).
func prepareHold(m *Message, ev *Event) (heldRow, error) {
	if m == nil {
		return heldRow{}, fmt.Errorf("nil message")
	}
	if err := checkID(m.ID); err != nil {
		return heldRow{}, err
	}
	if m.State == "" {
		m.State = StateHeld
	}
	if m.State != StateHeld {
		return heldRow{}, fmt.Errorf("state %q: a new message must be %q", m.State, StateHeld)
	}
	if len(m.Raw) == 0 {
		return heldRow{}, fmt.Errorf("empty message content")
	}
	if m.Size != 0 && m.Size != int64(len(m.Raw)) {
		return heldRow{}, fmt.Errorf("size %d does not match the %d bytes of content", m.Size, len(m.Raw))
	}
	m.Size = int64(len(m.Raw))
	if len(m.Recipients) == 0 {
		return heldRow{}, fmt.Errorf("no held recipients")
	}
	for i, r := range m.Recipients {
		if r.Address == "" {
			return heldRow{}, fmt.Errorf("recipient %d: empty address", i)
		}
		if err := checkText(fmt.Sprintf("recipient %d", i), r.Address+r.Verdict+r.Intended+r.Suggestion+strings.Join(r.Reasons, "")); err != nil {
			return heldRow{}, err
		}
	}
	for _, f := range [...]struct{ name, v string }{{"sender", m.Sender}, {"queue id", m.QueueID}, {"node", m.Node}} {
		if err := checkText(f.name, f.v); err != nil {
			return heldRow{}, err
		}
	}
	if m.ExpiresAt.IsZero() {
		return heldRow{}, fmt.Errorf("no expiry time")
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = nowStamp()
	}
	m.CreatedAt = stamp(m.CreatedAt)
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = m.CreatedAt
	}
	m.UpdatedAt = stamp(m.UpdatedAt)
	m.ExpiresAt = stamp(m.ExpiresAt)
	m.NotifiedAt = stamp(m.NotifiedAt)

	if ev.MessageID == "" {
		ev.MessageID = m.ID
	}
	if ev.MessageID != m.ID {
		return heldRow{}, fmt.Errorf("event is about message %q", ev.MessageID)
	}
	if ev.Kind == "" {
		ev.Kind = "held"
	}
	if ev.Time.IsZero() {
		ev.Time = m.CreatedAt
	}
	if err := prepareEvent(ev); err != nil {
		return heldRow{}, err
	}

	rcpts, err := json.Marshal(m.Recipients)
	if err != nil {
		return heldRow{}, fmt.Errorf("encode recipients: %w", err)
	}
	raw, err := compress(m.Raw)
	if err != nil {
		return heldRow{}, err
	}
	return heldRow{recipients: rcpts, raw: raw}, nil
}

// prepareTransition validates a transition and fills the event's defaults:
// MessageID (id), Kind (the new state) and Time (now).
func prepareTransition(id string, from, to State, ev *Event) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkState(from); err != nil {
		return err
	}
	if err := checkState(to); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("from and to are both %q", from)
	}
	if ev.MessageID == "" {
		ev.MessageID = id
	}
	if ev.MessageID != id {
		return fmt.Errorf("event is about message %q", ev.MessageID)
	}
	if ev.Kind == "" {
		ev.Kind = string(to)
	}
	return prepareEvent(ev)
}

// prepareEvent validates ev and sets its Time (now when zero).
func prepareEvent(ev *Event) error {
	if ev.Kind == "" {
		return fmt.Errorf("event without a kind")
	}
	if ev.MessageID != "" {
		if err := checkID(ev.MessageID); err != nil {
			return fmt.Errorf("event: %w", err)
		}
	}
	for _, f := range [...]struct{ name, v string }{{"event kind", ev.Kind}, {"event actor", ev.Actor}, {"event detail", ev.Detail}} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	if ev.Time.IsZero() {
		ev.Time = nowStamp()
	}
	ev.Time = stamp(ev.Time)
	return nil
}

// prepareList validates f and applies its defaults.
func prepareList(f *Filter) error {
	for _, s := range f.States {
		if err := checkState(s); err != nil {
			return err
		}
	}
	if f.Limit < 0 {
		return fmt.Errorf("negative limit %d", f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = defaultList
	}
	if err := checkText("sender", f.Sender); err != nil {
		return err
	}
	if err := checkText("search", f.Search); err != nil {
		return err
	}
	f.Search = strings.ToLower(f.Search)
	f.Before = stamp(f.Before)
	return nil
}

func prepareEvents(f *EventFilter) error {
	if f.Limit < 0 {
		return fmt.Errorf("negative limit %d", f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = defaultEvents
	}
	if f.MessageID != "" {
		if err := checkID(f.MessageID); err != nil {
			return err
		}
	}
	if err := checkText("kind", f.Kind); err != nil {
		return err
	}
	f.Since = stamp(f.Since)
	return nil
}

// prepareDeliveries validates a delivery and returns its distinct domains in
// sorted order: one message counts once per domain, and a fixed lock order
// keeps concurrent PostgreSQL upserts from deadlocking.
func prepareDeliveries(sender string, domains []string) ([]string, error) {
	if err := checkText("sender", sender); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(domains))
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		if d == "" {
			return nil, fmt.Errorf("empty domain")
		}
		if err := checkText("domain", d); err != nil {
			return nil, err
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}
