package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits shared by both backends, so that what one accepts the other does
// too.
const (
	maxIDLen        = 64
	defaultList     = 100
	defaultEvents   = 1000
	defaultDueLimit = 100

	maxUserLen     = 64
	minTokenIDLen  = 8
	maxTokenIDLen  = 32
	defaultReports = 100
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
// maxSubject bounds a stored Subject, in runes.
const maxSubject = 200

// cleanSubject makes a Subject storable and showable: valid UTF-8, control
// characters (NUL, line breaks) as spaces, at most maxSubject runes.
func cleanSubject(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxSubject {
		s = string(r[:maxSubject]) + "…"
	}
	return s
}

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
	// The Subject is the message's own text: cleaned, never a reason to
	// refuse holding it.
	m.Subject = cleanSubject(m.Subject)
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

// prepareClaim validates a release claim, fills the event's defaults as
// prepareTransition does, and returns the recipients as a JSON array.
func prepareClaim(id string, rel Release, ev *Event) ([]byte, error) {
	if rel.Action != ReleaseAsTyped && rel.Action != ReleaseFixed {
		return nil, fmt.Errorf("release action %q: want %q or %q", rel.Action, ReleaseAsTyped, ReleaseFixed)
	}
	if len(rel.To) == 0 {
		return nil, fmt.Errorf("release to nobody")
	}
	for i, a := range rel.To {
		if a == "" {
			return nil, fmt.Errorf("release recipient %d: empty address", i)
		}
		if err := checkText(fmt.Sprintf("release recipient %d", i), a); err != nil {
			return nil, err
		}
	}
	if err := prepareTransition(id, StateHeld, StateReleasing, ev); err != nil {
		return nil, err
	}
	to, err := json.Marshal(rel.To)
	if err != nil {
		return nil, fmt.Errorf("encode release recipients: %w", err)
	}
	return to, nil
}

// prepareRetry validates a release retry and fills the event's defaults.
func prepareRetry(id string, staleBefore time.Time, ev *Event) error {
	if err := checkID(id); err != nil {
		return err
	}
	if staleBefore.IsZero() {
		return fmt.Errorf("no stale time")
	}
	if ev.MessageID == "" {
		ev.MessageID = id
	}
	if ev.MessageID != id {
		return fmt.Errorf("event is about message %q", ev.MessageID)
	}
	if ev.Kind == "" {
		ev.Kind = "release-retry"
	}
	return prepareEvent(ev)
}

// prepareWarnNotice validates a warn notice claim and returns its UTC day.
func prepareWarnNotice(sender, domain string, at time.Time) (time.Time, error) {
	if domain == "" {
		return time.Time{}, fmt.Errorf("empty domain")
	}
	if at.IsZero() {
		return time.Time{}, fmt.Errorf("no time")
	}
	if err := checkText("sender", sender); err != nil {
		return time.Time{}, err
	}
	if err := checkText("domain", domain); err != nil {
		return time.Time{}, err
	}
	return at.UTC().Truncate(24 * time.Hour), nil
}

// decodeRelease reads the release columns.
func decodeRelease(action, to string) (Release, error) {
	r := Release{Action: action}
	if to != "" {
		if err := json.Unmarshal([]byte(to), &r.To); err != nil {
			return Release{}, fmt.Errorf("release recipients: %w", err)
		}
	}
	if len(r.To) == 0 {
		r.To = nil // never claimed: as a Message the caller built
	}
	return r, nil
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
	if f.IDPrefix != "" {
		if err := checkID(f.IDPrefix); err != nil {
			return err
		}
	}
	f.Before = stamp(f.Before)
	if f.BeforeID != "" {
		if f.Before.IsZero() {
			return fmt.Errorf("BeforeID without Before")
		}
		if err := checkID(f.BeforeID); err != nil {
			return err
		}
	}
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

// deliveryBatch is a batch of delivery counts as addDeliveryCounts writes
// it: one row per key in each table, each slice sorted by its key.
type deliveryBatch struct {
	domains []deliveryDomain
	days    []deliveryDay
	senders []deliverySender
}

type deliveryDomain struct {
	domain      string
	n           int64
	first, last time.Time
}

type deliveryDay struct {
	domain string
	day    time.Time
}

type deliverySender struct{ domain, sender string }

// Check says what AddDeliveryCounts would refuse in c: no domain, text
// that is not valid UTF-8 or holds a NUL, a negative N, or a Last before
// First.
func (c DeliveryCount) Check() error {
	if c.Domain == "" {
		return fmt.Errorf("empty domain")
	}
	if err := checkText("domain", c.Domain); err != nil {
		return err
	}
	if err := checkText("sender", c.Sender); err != nil {
		return err
	}
	if c.N < 0 {
		return fmt.Errorf("negative count %d for %s", c.N, c.Domain)
	}
	if !c.Last.IsZero() && c.Last.Before(c.First) {
		return fmt.Errorf("deliveries to %s end (%s) before they start (%s)",
			c.Domain, c.Last.Format(time.RFC3339Nano), c.First.Format(time.RFC3339Nano))
	}
	return nil
}

// prepareDeliveryCounts validates counts (Check; a zero First or Last is
// the other one, both zero are now), sums them per domain and gathers
// the days and senders per domain. counts is not modified.
func prepareDeliveryCounts(counts []DeliveryCount) (deliveryBatch, error) {
	domains := map[string]*deliveryDomain{}
	days := map[deliveryDay]bool{}
	senders := map[deliverySender]bool{}
	for _, c := range counts {
		if err := c.Check(); err != nil {
			return deliveryBatch{}, err
		}
		if c.N == 0 {
			continue
		}
		first, last := stamp(c.First), stamp(c.Last)
		switch {
		case first.IsZero() && last.IsZero():
			first = nowStamp()
			last = first
		case first.IsZero():
			first = last
		case last.IsZero():
			last = first
		}
		if d := domains[c.Domain]; d != nil {
			d.n += c.N
			if first.Before(d.first) {
				d.first = first
			}
			if last.After(d.last) {
				d.last = last
			}
		} else {
			domains[c.Domain] = &deliveryDomain{c.Domain, c.N, first, last}
		}
		days[deliveryDay{c.Domain, day(first)}] = true
		days[deliveryDay{c.Domain, day(last)}] = true
		if c.Sender != "" {
			// One person, one sender, whatever the case of the address.
			senders[deliverySender{c.Domain, strings.ToLower(c.Sender)}] = true
		}
	}
	var b deliveryBatch
	for _, d := range domains {
		b.domains = append(b.domains, *d)
	}
	slices.SortFunc(b.domains, func(x, y deliveryDomain) int { return strings.Compare(x.domain, y.domain) })
	for d := range days {
		b.days = append(b.days, d)
	}
	slices.SortFunc(b.days, func(x, y deliveryDay) int {
		return cmp.Or(strings.Compare(x.domain, y.domain), x.day.Compare(y.day))
	})
	for d := range senders {
		b.senders = append(b.senders, d)
	}
	slices.SortFunc(b.senders, func(x, y deliverySender) int {
		return cmp.Or(strings.Compare(x.domain, y.domain), strings.Compare(x.sender, y.sender))
	})
	return b, nil
}

// The dashboard's records. Keys that are credentials or may be typed by a
// person (a user name that is really a password, a session id that is
// really the cookie's secret) are never echoed in an error.

// checkUserName accepts 1–64 of [0-9A-Za-z._@+-].
func checkUserName(field, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s", field)
	}
	if len(name) > maxUserLen {
		return fmt.Errorf("%s longer than %d bytes", field, maxUserLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			c == '.' || c == '_' || c == '@' || c == '+' || c == '-') {
			return fmt.Errorf("%s: want only [0-9A-Za-z._@+-]", field)
		}
	}
	return nil
}

func checkRole(r Role) error {
	switch r {
	case RoleAdmin, RoleAuditor:
		return nil
	}
	return fmt.Errorf("role %q: want %q or %q", r, RoleAdmin, RoleAuditor)
}

// checkHex64 accepts a hex SHA-256: exactly 64 lowercase hex digits.
func checkHex64(field, s string) error {
	if len(s) != 64 {
		return fmt.Errorf("%s: want 64 lowercase hex digits (a hex SHA-256), got %d bytes", field, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%s: want 64 lowercase hex digits (a hex SHA-256)", field)
		}
	}
	return nil
}

// checkTokenID accepts 8–32 of [0-9a-z].
func checkTokenID(id string) error {
	if len(id) < minTokenIDLen || len(id) > maxTokenIDLen {
		return fmt.Errorf("token id: want %d–%d of [0-9a-z], got %d bytes", minTokenIDLen, maxTokenIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return fmt.Errorf("token id: want only [0-9a-z]")
		}
	}
	return nil
}

// notFoundIf turns a malformed lookup key into ErrNotFound with the
// reason: no such row can exist, and a caller looking up what a client sent
// (a login name, a token id) needs to test for ErrNotFound only.
func notFoundIf(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNotFound, err)
}

// prepareUser validates u and sets its UpdatedAt (and CreatedAt, which the
// store keeps on replace) to now.
func prepareUser(u *User) error {
	if u == nil {
		return fmt.Errorf("nil user")
	}
	if err := checkUserName("user name", u.Name); err != nil {
		return err
	}
	if err := checkRole(u.Role); err != nil {
		return err
	}
	if u.Hash == "" {
		return fmt.Errorf("user %s: empty password hash", u.Name)
	}
	if err := checkText("password hash", u.Hash); err != nil {
		return fmt.Errorf("user %s: %w", u.Name, err)
	}
	u.UpdatedAt = nowStamp()
	u.CreatedAt = u.UpdatedAt
	return nil
}

// prepareSession validates s and fills CreatedAt (now when zero).
func prepareSession(s *Session) error {
	if s == nil {
		return fmt.Errorf("nil session")
	}
	if err := checkHex64("session id", s.ID); err != nil {
		return err
	}
	if err := checkUserName("session user", s.User); err != nil {
		return err
	}
	if s.CSRF == "" {
		return fmt.Errorf("session without a CSRF token")
	}
	if err := checkText("session CSRF token", s.CSRF); err != nil {
		return err
	}
	if s.ExpiresAt.IsZero() {
		return fmt.Errorf("session without an expiry time")
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = nowStamp()
	}
	s.CreatedAt, s.ExpiresAt = stamp(s.CreatedAt), stamp(s.ExpiresAt)
	return nil
}

// nowOr is t, or the store's clock when t is zero, truncated by stamp.
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return nowStamp()
	}
	return stamp(t)
}

// prepareToken validates t and fills CreatedAt (now when zero).
func prepareToken(t *Token) error {
	if t == nil {
		return fmt.Errorf("nil token")
	}
	if err := checkTokenID(t.ID); err != nil {
		return err
	}
	if err := checkHex64("token hash", t.Hash); err != nil {
		return fmt.Errorf("token %s: %w", t.ID, err)
	}
	for _, f := range [...]struct{ name, v string }{{"token name", t.Name}, {"token created by", t.CreatedBy}} {
		if err := checkText(f.name, f.v); err != nil {
			return fmt.Errorf("token %s: %w", t.ID, err)
		}
	}
	t.CreatedAt = nowOr(t.CreatedAt)
	return nil
}

func checkRuleKind(kind string) error {
	switch kind {
	case "allow", "deny":
		return nil
	}
	return fmt.Errorf("rule kind %q: want \"allow\" or \"deny\"", kind)
}

// prepareRule validates r and fills CreatedAt (now when zero).
func prepareRule(r *Rule) error {
	if r == nil {
		return fmt.Errorf("nil rule")
	}
	if err := checkRuleKind(r.Kind); err != nil {
		return err
	}
	if r.Pattern == "" {
		return fmt.Errorf("empty rule pattern")
	}
	if err := checkText("rule pattern", r.Pattern); err != nil {
		return err
	}
	if strings.ContainsFunc(r.Pattern, unicode.IsSpace) {
		return fmt.Errorf("rule pattern %q contains white space", r.Pattern)
	}
	for _, f := range [...]struct{ name, v string }{{"rule note", r.Note}, {"rule created by", r.CreatedBy}} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	r.CreatedAt = nowOr(r.CreatedAt)
	return nil
}

func prepareSenderAllow(a *SenderAllow) error {
	if a == nil {
		return fmt.Errorf("nil sender allow")
	}
	for _, f := range [...]struct{ name, v string }{{"sender", a.Sender}, {"recipient", a.Recipient}} {
		if f.v == "" {
			return fmt.Errorf("empty %s", f.name)
		}
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
		if strings.ContainsFunc(f.v, unicode.IsSpace) {
			return fmt.Errorf("%s %q contains white space", f.name, f.v)
		}
	}
	for _, f := range [...]struct{ name, v string }{{"note", a.Note}, {"created by", a.CreatedBy}} {
		if err := checkText(f.name, f.v); err != nil {
			return err
		}
	}
	a.CreatedAt = nowOr(a.CreatedAt)
	return nil
}

// day is the UTC midnight that begins t's UTC day.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// prepareDecisionCounts validates counts and returns them with their days
// truncated, one entry per (Day, Verdict, Action) with the Ns summed, no
// zero entries, sorted: a fixed lock order keeps concurrent PostgreSQL
// upserts from deadlocking. counts is not modified.
func prepareDecisionCounts(counts []DecisionCount) ([]DecisionCount, error) {
	type key struct {
		day             int64
		verdict, action string
	}
	sums := make(map[key]int64, len(counts))
	for i, c := range counts {
		if c.Day.IsZero() {
			return nil, fmt.Errorf("count %d: no day", i)
		}
		if c.Verdict == "" || c.Action == "" {
			return nil, fmt.Errorf("count %d: empty verdict or action", i)
		}
		if err := checkText("verdict", c.Verdict); err != nil {
			return nil, fmt.Errorf("count %d: %w", i, err)
		}
		if err := checkText("action", c.Action); err != nil {
			return nil, fmt.Errorf("count %d: %w", i, err)
		}
		if c.N < 0 {
			return nil, fmt.Errorf("count %d: negative n %d", i, c.N)
		}
		if c.N == 0 {
			continue
		}
		k := key{day(c.Day).UnixMicro(), c.Verdict, c.Action}
		if sums[k] > maxInt64-c.N {
			return nil, fmt.Errorf("count %d: n overflows", i)
		}
		sums[k] += c.N
	}
	out := make([]DecisionCount, 0, len(sums))
	for k, n := range sums {
		out = append(out, DecisionCount{Day: time.UnixMicro(k.day).UTC(), Verdict: k.verdict, Action: k.action, N: n})
	}
	slices.SortFunc(out, compareDecisionCounts)
	return out, nil
}

const maxInt64 = 1<<63 - 1

// compareDecisionCounts orders by day, then verdict, then action (bytewise,
// as both backends sort them).
func compareDecisionCounts(a, b DecisionCount) int {
	return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.Verdict, b.Verdict), strings.Compare(a.Action, b.Action))
}

func checkReportKind(kind string) error {
	switch kind {
	case "audit", "scan":
		return nil
	}
	return fmt.Errorf("report kind %q: want \"audit\" or \"scan\"", kind)
}

// reportRow is a Report prepared for insertion: its bodies compressed.
type reportRow struct {
	json, html []byte
}

// prepareReport validates r, fills CreatedAt (now when zero) and compresses
// its bodies.
func prepareReport(r *Report) (reportRow, error) {
	if r == nil {
		return reportRow{}, fmt.Errorf("nil report")
	}
	if err := checkReportKind(r.Kind); err != nil {
		return reportRow{}, err
	}
	for _, f := range [...]struct{ name, v string }{{"report title", r.Title}, {"report created by", r.CreatedBy}} {
		if err := checkText(f.name, f.v); err != nil {
			return reportRow{}, err
		}
	}
	if err := checkJSONStream(r.JSON); err != nil {
		return reportRow{}, fmt.Errorf("report JSON: %w", err)
	}
	r.CreatedAt = nowOr(r.CreatedAt)
	j, err := compress(r.JSON)
	if err != nil {
		return reportRow{}, fmt.Errorf("report JSON: %w", err)
	}
	h, err := compress(r.HTML)
	if err != nil {
		return reportRow{}, fmt.Errorf("report HTML: %w", err)
	}
	return reportRow{json: j, html: h}, nil
}

// checkJSONStream accepts what `--format json` prints: zero or more JSON
// values (one object per line), nothing else.
func checkJSONStream(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	for n := 1; ; n++ {
		var v json.RawMessage
		err := d.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("value %d: %w", n, err)
		}
	}
}

// prepareReportList validates a ListReports query and applies its default
// limit.
func prepareReportList(kind string, limit int) (int, error) {
	if kind != "" {
		if err := checkReportKind(kind); err != nil {
			return 0, err
		}
	}
	if limit < 0 {
		return 0, fmt.Errorf("negative limit %d", limit)
	}
	if limit == 0 {
		limit = defaultReports
	}
	return limit, nil
}

// bodyOf decompresses a stored report body; an empty body is nil.
func bodyOf(stored []byte, size int64) ([]byte, error) {
	b, err := decompress(stored, size)
	if len(b) == 0 {
		b = nil
	}
	return b, err
}

// lookup wraps a single-row query's error for the caller: nil stays nil,
// the driver's no-rows error becomes ErrNotFound, and either is prefixed
// with "store: " and what was looked up.
func lookup(err, noRows error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, noRows) {
		err = ErrNotFound
	}
	return fmt.Errorf("store: "+format+": %w", append(args, err)...)
}
