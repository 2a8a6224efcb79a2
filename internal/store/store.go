// Package store persists what must survive a crash and be shared between
// stray nodes: held messages (the quarantine), the event log, and learned
// correspondent counts. Two backends implement one interface with one schema
// (migrations in the repository): SQLite (embedded default, WAL, fsync on
// commit) and PostgreSQL (several nodes sharing state).
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
	ID         string // random, unguessable (32 hex digits); set by the caller
	QueueID    string // the MTA's queue id, for the logs
	Sender     string
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
}

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
	Limit  int       // 0: 100
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
	FirstSeen  time.Time
	LastSeen   time.Time
}

// Errors.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the message was not in the expected state (someone
	// else released or discarded it first).
	ErrConflict = errors.New("store: state changed concurrently")
	// ErrExists: Hold was given an id that is already stored.
	ErrExists = errors.New("store: message already exists")
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
	// Correspondents returns learned domains, most deliveries first (limit
	// 0: all).
	Correspondents(ctx context.Context, limit int) ([]Correspondent, error)
	// Ping checks that the store is reachable and writable enough to hold
	// (it inserts an event and rolls it back).
	Ping(ctx context.Context) error
	Close() error
}
