// Package store persists what must survive a crash and be shared between
// stray nodes: held messages (the quarantine), the event log, learned
// correspondent counts, and what the dashboard and HTTP API share between
// nodes (users, sessions, API tokens, run-time policy rules, daily decision
// counts, saved reports). One implementation on database/sql (sqlstore.go)
// serves two databases with one schema (migrations in the repository, one
// directory per database): SQLite (embedded default, WAL, fsync on commit)
// and PostgreSQL (several nodes sharing state); a small dialect value
// (dialect.go) holds what differs between them.
//
// It stores and retrieves; it never decides what to hold or release.
package store

import (
	"context"
	"errors"
	"time"
)

// State is a held message's place in the hold workflow.
//
//	held ──► releasing ──► released
//	  │          └──(re-injection failed)──► held
//	  ├──► discarded
//	  └──► expired
type State string

const (
	StateHeld      State = "held"      // waiting for the sender
	StateReleasing State = "releasing" // claimed by a node, being re-injected
	StateReleased  State = "released"  // delivered to the held recipients
	StateDiscarded State = "discarded" // cancelled by the sender or an admin
	StateExpired   State = "expired"   // nobody answered in time
)

// Recipient is one held recipient and why it was held.
type Recipient struct {
	Address    string   `json:"address"`
	Verdict    string   `json:"verdict"`
	Intended   string   `json:"intended,omitempty"`
	Suggestion string   `json:"suggestion,omitempty"`
	Score      float64  `json:"score"`
	Reasons    []string `json:"reasons,omitempty"` // "kind: message"
}

// Message is a held message.
type Message struct {
	ID      string // random, unguessable (32 hex digits); set by the caller
	QueueID string // the MTA's queue id, for the logs
	Sender  string
	// Subject is the message's Subject header, decoded and clipped, for
	// lists that do not load Raw.
	Subject    string
	Recipients []Recipient // the held recipients only
	// Raw is the whole message as received (headers and body). The store
	// compresses it; List does not load it.
	Raw       []byte
	Size      int64 // len(Raw)
	State     State
	Node      string // the node that held it
	CreatedAt time.Time
	// UpdatedAt is when State last changed (the time of the event that
	// changed it); Due uses it to find messages stuck in releasing.
	UpdatedAt time.Time
	ExpiresAt time.Time
	// NotifiedAt is when the sender was told (zero: not yet).
	NotifiedAt time.Time
	// Release is what was chosen when the message was last claimed for
	// release (zero: never claimed).
	Release Release
}

// Release is the choice made for a message claimed for release: how, and
// the envelope recipients the message is re-injected to. ClaimRelease
// stores it in the same transaction as the move to releasing, so a node
// that retries a release another node left unfinished repeats the choice
// (a message the sender chose to send to j@gmail.com never goes to the
// typo j@gmial.com).
type Release struct {
	Action string   // ReleaseAsTyped or ReleaseFixed
	To     []string // the addresses the message is delivered to
}

// Release actions.
const (
	ReleaseAsTyped = "release" // to the held recipients as typed
	ReleaseFixed   = "fix"     // to the suggested addresses
)

// Event is one line of the audit trail: every decision and every state
// change, who and when.
type Event struct {
	ID        int64
	Time      time.Time
	MessageID string // "" for events about no held message (a decision, a login)
	Kind      string // e.g. decision, held, notified, released, discarded, expired, release-failed, login
	Actor     string // "sender", "admin:NAME", "system", "node:NAME"
	Detail    string // free text or JSON
}

// Filter selects held messages for List.
type Filter struct {
	States []State   // empty: all
	Sender string    // exact, "" any
	Search string    // substring of sender or any recipient address, case-insensitive (ASCII at least), "" any
	Before time.Time // CreatedAt before, zero any
	// BeforeID, with Before, also takes the messages created exactly at
	// Before whose id sorts before it: Before and BeforeID of the last
	// message of a page give the next page, even when several messages
	// share a creation time.
	BeforeID string
	// IDPrefix: only messages whose id starts with it (case-sensitive),
	// "" any. An administrator names a message by a unique prefix.
	IDPrefix string
	Limit    int // 0: 100
}

// EventFilter selects events.
type EventFilter struct {
	MessageID string
	Kind      string
	Since     time.Time // at or after, zero any
	Limit     int       // 0: 1000
}

// Correspondent is a learned recipient domain.
type Correspondent struct {
	Domain     string
	Deliveries int64
	Senders    int64 // distinct sender addresses
	Days       int64 // distinct UTC days with a delivery
	FirstSeen  time.Time
	LastSeen   time.Time
}

// Role is what a dashboard user may do.
type Role string

const (
	RoleAdmin   Role = "admin"   // everything
	RoleAuditor Role = "auditor" // read-only
)

// User is a local dashboard user.
type User struct {
	Name      string // 1–64 of [0-9A-Za-z._@+-]
	Role      Role
	Hash      string // the password hash, a PHC string ($argon2id$v=19$…); never logged
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Session is a logged-in dashboard session. The cookie carries a random
// secret; the store keeps only its SHA-256, so a copy of the database does
// not let anyone log in.
type Session struct {
	ID        string // hex SHA-256 of the cookie's secret (64 hex digits)
	User      string
	CSRF      string // the session's CSRF token
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Token is an API token for the HTTP check API. The token a client sends is
// "stray_<ID>_<secret>"; the store keeps the ID in clear (to find the row)
// and only the SHA-256 of the secret.
type Token struct {
	ID        string // 8–32 of [0-9a-z]
	Name      string // what it is for, e.g. "outlook add-in"
	Hash      string // hex SHA-256 of the secret (64 hex digits)
	CreatedBy string
	CreatedAt time.Time
}

// Rule is a policy rule added at run time (from the dashboard), merged into
// the configured policy's lists.
type Rule struct {
	ID        int64
	Kind      string // "allow" or "deny"
	Pattern   string // as in policy.allow: an address, a domain, or a .suffix
	Note      string
	CreatedBy string
	CreatedAt time.Time
}

// SenderAllow lets one sender's mail through to one recipient address
// that stray flags (a held message released as typed). It is narrower than
// any allow rule and teaches nothing organisation-wide.
type SenderAllow struct {
	ID        int64
	Sender    string // the sender's address
	Recipient string // the recipient address, as policy.allow reads one
	Note      string
	CreatedBy string // "release", "admin:NAME"
	CreatedAt time.Time
}

// DecisionCount is how many recipient decisions one day had with one
// verdict and action (every decision, not only flagged ones).
type DecisionCount struct {
	Day     time.Time // UTC midnight
	Verdict string
	Action  string
	N       int64
}

// DeliveryCount is N delivered messages from Sender (empty: bounces) to
// Domain, the first at First and the last at Last. The days with a
// delivery it adds are those of First and Last: sum per day.
type DeliveryCount struct {
	Domain, Sender string
	N              int64
	First, Last    time.Time
}

// Report is a saved audit or scan result, browsable in the dashboard.
type Report struct {
	ID        int64
	Kind      string // "audit" or "scan"
	Title     string
	CreatedBy string
	CreatedAt time.Time
	JSON      []byte // the result as `--format json` prints it: zero or more JSON values (GetReport only)
	HTML      []byte // the rendered HTML report, may be empty (GetReport only)
}

// Errors.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the message was not in the expected state (someone
	// else released or discarded it first).
	ErrConflict = errors.New("store: state changed concurrently")
	// ErrExists: the key is taken (Hold's message id, CreateSession's
	// id, PutToken's id, AddRule's kind and pattern).
	ErrExists = errors.New("store: already exists")
)

// Store is the persistence interface. Every method is safe for concurrent
// use from several goroutines and, for PostgreSQL, several nodes. A write
// has reached stable storage when the method returns nil.
type Store interface {
	// Hold stores a new held message (State must be StateHeld) and its
	// "held" event in one transaction.
	//
	// It fills in m: Size, CreatedAt (now when zero), UpdatedAt (CreatedAt
	// when zero), with every time truncated to the microsecond in UTC, as
	// Get will return them; and in ev: MessageID, Kind ("held") and Time
	// (CreatedAt) when empty. ID must be 1–64 of [0-9A-Za-z_-]; Raw,
	// Recipients and ExpiresAt are required; text must be valid UTF-8
	// without NUL (stored exactly, never cleaned). ErrExists when the id
	// is taken.
	Hold(ctx context.Context, m *Message, ev Event) error
	// Get returns a message with its Raw content.
	Get(ctx context.Context, id string) (*Message, error)
	// List returns messages without Raw, newest first.
	List(ctx context.Context, f Filter) ([]Message, error)
	// Transition moves a message from one state to another atomically,
	// recording ev in the same transaction; ErrConflict when its state is
	// not from (this is what makes a release happen exactly once across
	// nodes), ErrNotFound when there is no such message. A failed
	// transition records nothing.
	//
	// ev's MessageID defaults to id, its Kind to the new state, its Time
	// to now; that time becomes the message's UpdatedAt. Which transitions
	// are allowed is the caller's business: the store checks only that
	// from and to are known states and differ.
	Transition(ctx context.Context, id string, from, to State, ev Event) error
	// ClaimRelease moves a held message to releasing and records the
	// chosen release (Action ReleaseAsTyped or ReleaseFixed, To at least
	// one non-empty address) with ev, in one transaction, as Transition
	// does (ev's Kind defaults to "releasing"). ErrConflict when it is not
	// held (the choice stored earlier stands), ErrNotFound when missing.
	ClaimRelease(ctx context.Context, id string, rel Release, ev Event) error
	// RetryRelease claims a release a node left unfinished: a message in
	// releasing whose UpdatedAt is before staleBefore gets UpdatedAt =
	// ev.Time (now when zero), with ev (Kind default "release-retry"), in
	// one transaction. Of several nodes sweeping at once exactly one wins;
	// the others get ErrConflict (also when the message is not releasing
	// or not stale), ErrNotFound when it is missing. The stored Release
	// is kept.
	RetryRelease(ctx context.Context, id string, staleBefore time.Time, ev Event) error
	// ClaimWarnNotice records that sender is told about a warned
	// recipient domain on the UTC day of at, and reports whether this is
	// the first time that day (false: they were told already; do not tell
	// them again). Across nodes, exactly one claim per sender, domain and
	// day returns true. Sender and domain are stored as given (normalise
	// them first); domain must not be empty, at must be set.
	ClaimWarnNotice(ctx context.Context, sender, domain string, at time.Time) (bool, error)
	// MarkNotified records that the sender was notified (at zero: now).
	// ErrNotFound when there is no such message.
	MarkNotified(ctx context.Context, id string, at time.Time) error
	// Due returns ids of messages in state held whose ExpiresAt is before
	// now, and of messages stuck in releasing since before staleBefore (a
	// node died while re-injecting), at most limit of each (0: 100),
	// oldest first. "Stuck since" is UpdatedAt, the time of the event
	// that moved it to releasing.
	Due(ctx context.Context, now, staleBefore time.Time, limit int) (expired, stale []string, err error)
	// AddEvent appends to the event log. Kind is required; Time zero is
	// now.
	AddEvent(ctx context.Context, ev Event) error
	// Events returns events, newest first (by Time, then by ID).
	Events(ctx context.Context, f EventFilter) ([]Event, error)
	// AddDeliveries counts one delivered message from sender to each of
	// the recipient domains (learning from traffic). A domain named twice
	// counts once; an empty sender (a bounce) counts toward Deliveries but
	// not Senders. Domains and sender are stored as given: normalise them
	// first.
	AddDeliveries(ctx context.Context, sender string, domains []string, at time.Time) error
	// AddDeliveryCounts adds many delivered messages at once, in one
	// transaction (the recorder gathers a second's worth): each count is
	// N messages from Sender to Domain, the first at First and the last at
	// Last, counted as AddDeliveries would count them one by one.
	AddDeliveryCounts(ctx context.Context, counts []DeliveryCount) error
	// Correspondents returns learned domains, most deliveries first (limit
	// 0: all), with their evidence: distinct senders and distinct UTC days.
	Correspondents(ctx context.Context, limit int) ([]Correspondent, error)

	// Per-sender allows. AddSenderAllow fills ID and CreatedAt (now when
	// zero); the same sender and recipient twice is ErrExists. Sender and
	// Recipient are non-empty without white space, stored as given
	// (normalise them first). DeleteSenderAllow: ErrNotFound when missing.
	AddSenderAllow(ctx context.Context, a *SenderAllow) error
	ListSenderAllows(ctx context.Context) ([]SenderAllow, error) // oldest first
	DeleteSenderAllow(ctx context.Context, id int64) error
	// Users. PutUser creates the user or replaces its role and hash
	// (filling CreatedAt on creation and UpdatedAt always); DeleteUser
	// also ends the user's sessions. ErrNotFound for a missing user.
	//
	// The store sets both times: PutUser ignores the CreatedAt and
	// UpdatedAt it is given and writes back the stored CreatedAt (kept on
	// replace) and now as UpdatedAt. Name must be 1–64 of
	// [0-9A-Za-z._@+-], Role admin or auditor, Hash non-empty.
	//
	// Lookups and deletions by a malformed key (a user name, session id
	// or token id that could not have been stored) return an error that
	// wraps ErrNotFound and says what is wrong with the key, so that a
	// caller looking up what a client sent need test for ErrNotFound
	// only; DeleteSession returns a plain error for a malformed id. Keys
	// are never echoed in such errors (a "user name" may be a password).
	PutUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, name string) (*User, error)
	ListUsers(ctx context.Context) ([]User, error) // by name
	DeleteUser(ctx context.Context, name string) error

	// Sessions. GetSession returns ErrNotFound for a missing session and
	// for one that expired at or before now. DeleteSession of a missing
	// session is not an error. PurgeSessions deletes the expired ones and
	// says how many.
	//
	// CreateSession fills CreatedAt (now when zero); ID must be 64
	// lowercase hex digits, CSRF non-empty, ExpiresAt set. ErrNotFound
	// when User does not exist, ErrExists when the ID is taken. A zero
	// now means the current time.
	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, id string, now time.Time) (*Session, error)
	DeleteSession(ctx context.Context, id string) error
	PurgeSessions(ctx context.Context, now time.Time) (int64, error)

	// API tokens. PutToken returns ErrExists for a taken ID; DeleteToken
	// ErrNotFound for a missing one. PutToken fills CreatedAt (now when
	// zero); ID must be 8–32 of [0-9a-z], Hash 64 lowercase hex digits.
	PutToken(ctx context.Context, t *Token) error
	GetToken(ctx context.Context, id string) (*Token, error)
	ListTokens(ctx context.Context) ([]Token, error) // oldest first
	DeleteToken(ctx context.Context, id string) error

	// Run-time policy rules. AddRule fills ID and CreatedAt (now when
	// zero); the same kind and pattern twice is ErrExists. DeleteRule:
	// ErrNotFound when missing. Kind is allow or deny; Pattern is
	// non-empty without white space, stored as given (normalise it
	// first).
	AddRule(ctx context.Context, r *Rule) error
	ListRules(ctx context.Context) ([]Rule, error) // oldest first
	DeleteRule(ctx context.Context, id int64) error

	// Decision counts. AddDecisionCounts adds each N to the stored count of
	// its (Day, Verdict, Action), in one transaction; Day is truncated to
	// UTC midnight. DecisionCounts returns the days at or after since,
	// oldest first, then by verdict and action.
	//
	// Day must be set, Verdict and Action non-empty, N not negative (an N
	// of 0 stores nothing). since is truncated to its UTC day too, so the
	// day that contains since is included; zero since: every day.
	// Verdicts and actions sort bytewise.
	AddDecisionCounts(ctx context.Context, counts []DecisionCount) error
	DecisionCounts(ctx context.Context, since time.Time) ([]DecisionCount, error)

	// Saved reports. AddReport fills ID and CreatedAt. ListReports returns
	// reports of one kind ("" all) newest first, without JSON and HTML
	// (limit 0: 100). GetReport returns one with its bodies.
	//
	// AddReport's CreatedAt is now when zero; Kind is audit or scan; JSON
	// must be zero or more JSON values (audit and scan print one object a
	// line). The bodies are stored compressed; an empty body reads back
	// nil. GetReport: ErrNotFound when missing.
	AddReport(ctx context.Context, r *Report) error
	ListReports(ctx context.Context, kind string, limit int) ([]Report, error)
	GetReport(ctx context.Context, id int64) (*Report, error)

	// Ping checks that the store is reachable and writable enough to hold
	// (it inserts an event and rolls it back).
	Ping(ctx context.Context) error
	Close() error
}
