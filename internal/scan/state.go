package scan

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stray-mail/stray/detect"
)

// State is what the last scans found: every exposed lookalike (registered or
// answered by a wildcard) with its records, kept in a JSON file between runs
// so the next run can say what changed.
type State struct {
	Version   int               `json:"version"`
	ScannedAt time.Time         `json:"scanned_at"`
	Domains   map[string]Record `json:"domains"`
}

// StateVersion is the state file format written by this package.
const StateVersion = 1

// Record is one exposed lookalike in the state.
type Record struct {
	Original    string    `json:"original"`
	Kind        string    `json:"kind"`
	Status      Status    `json:"status"`
	A           []string  `json:"a"`
	AAAA        []string  `json:"aaaa"`
	MX          []string  `json:"mx"`
	NS          []string  `json:"ns"`
	NullMX      bool      `json:"null_mx"`
	AcceptsMail *bool     `json:"accepts_mail"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
}

// maxStateSize bounds what ReadState reads.
const maxStateSize = 64 << 20

// ReadState parses a state file strictly: unknown fields, another version,
// invalid domains or statuses are errors.
func ReadState(r io.Reader) (*State, error) {
	dec := json.NewDecoder(io.LimitReader(r, maxStateSize+1))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("state: trailing data after the JSON object")
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("state: version %d, want %d", s.Version, StateVersion)
	}
	if s.Domains == nil {
		s.Domains = map[string]Record{}
	}
	for d, rec := range s.Domains {
		if n, err := detect.NormalizeDomain(d); err != nil || n != d {
			return nil, fmt.Errorf("state: %q is not a normalised domain", d)
		}
		if !rec.Status.Exposed() {
			return nil, fmt.Errorf("state: %s: status %q, want registered or wildcard", d, rec.Status)
		}
		for _, l := range [][]string{rec.A, rec.AAAA, rec.MX, rec.NS} {
			for _, v := range l {
				if v == "" || strings.ContainsAny(v, " \t\r\n") {
					return nil, fmt.Errorf("state: %s: bad record %q", d, v)
				}
			}
		}
	}
	return &s, nil
}

// LoadState reads the state file at path; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: StateVersion, Domains: map[string]Record{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	s, err := ReadState(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Save writes the state to path atomically (a temporary file renamed over
// it), so an interrupted run never leaves half a state.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stray-state-*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

func recordOf(r Result, firstSeen, now time.Time) Record {
	return Record{
		Original: r.Original, Kind: r.Kind, Status: r.Status,
		A: r.A, AAAA: r.AAAA, MX: r.MX, NS: r.NS, NullMX: r.NullMX, AcceptsMail: r.AcceptsMail,
		FirstSeen: firstSeen, LastSeen: now,
	}
}

// Next is the state after a scan: exposed lookalikes as found now; those
// whose lookups failed (unknown) as they were; those not scanned this time
// as they were; unregistered ones dropped.
func (s *State) Next(results []Result, now time.Time) *State {
	next := &State{Version: StateVersion, ScannedAt: now.UTC(), Domains: map[string]Record{}}
	for d, rec := range s.Domains {
		next.Domains[d] = rec
	}
	for _, r := range results {
		prev, had := s.Domains[r.Domain]
		switch {
		case r.Status.Exposed():
			first := now.UTC()
			if had {
				first = prev.FirstSeen
			}
			next.Domains[r.Domain] = recordOf(r, first, now.UTC())
		case r.Status == Unregistered:
			delete(next.Domains, r.Domain)
		}
	}
	return next
}

// Diff is what changed since the last scan.
type Diff struct {
	ScannedAt time.Time `json:"scanned_at"`
	// New: exposed now, not before.
	New []Result `json:"new"`
	// Gone: exposed before, NXDOMAIN now.
	Gone []Gone `json:"gone"`
	// Changed: exposed before and now, with different records.
	Changed []Change `json:"changed"`
}

// Gone is a lookalike that no longer exists, as last seen.
type Gone struct {
	Domain string `json:"domain"`
	Record
}

// Change is one lookalike whose records changed.
type Change struct {
	Domain   string        `json:"domain"`
	Original string        `json:"original"`
	Fields   []FieldChange `json:"fields"`
}

// FieldChange is one field's change; lists say what was added and removed.
type FieldChange struct {
	Field   string   `json:"field"`
	Before  []string `json:"before"`
	After   []string `json:"after"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// alertFields are the changes that mean new exposure or new hands: a
// lookalike that starts taking mail, a new mail server, a new owner's name
// servers (.ml changed hands in July 2023), a wildcard that became a
// registration. Address changes alone (hosting moves) are reported quietly.
var alertFields = []string{"status", "ns", "mx", "accepts_mail"}

// Alert reports whether the diff holds something a person should look at:
// a new lookalike, or a change in an alerting field.
func (d *Diff) Alert() bool {
	if len(d.New) > 0 {
		return true
	}
	for _, c := range d.Changed {
		for _, f := range c.Fields {
			if slices.Contains(alertFields, f.Field) {
				return true
			}
		}
	}
	return false
}

// Empty reports whether nothing changed.
func (d *Diff) Empty() bool { return len(d.New)+len(d.Gone)+len(d.Changed) == 0 }

// DiffSince compares a scan's results with the previous state. Lookalikes
// whose lookups failed are neither gone nor changed.
func DiffSince(prev *State, results []Result, now time.Time) *Diff {
	d := &Diff{ScannedAt: now.UTC(), New: []Result{}, Gone: []Gone{}, Changed: []Change{}}
	for _, r := range results {
		old, had := prev.Domains[r.Domain]
		switch {
		case r.Status.Exposed() && !had:
			d.New = append(d.New, r)
		case r.Status.Exposed():
			if fs := fieldChanges(old, r); len(fs) > 0 {
				d.Changed = append(d.Changed, Change{Domain: r.Domain, Original: r.Original, Fields: fs})
			}
		case r.Status == Unregistered && had:
			d.Gone = append(d.Gone, Gone{Domain: r.Domain, Record: old})
		}
	}
	return d
}

func fieldChanges(old Record, r Result) []FieldChange {
	var out []FieldChange
	list := func(field string, before, after []string) {
		if slices.Equal(before, after) {
			return
		}
		fc := FieldChange{Field: field, Before: nonNil(before), After: nonNil(after)}
		for _, v := range after {
			if !slices.Contains(before, v) {
				fc.Added = append(fc.Added, v)
			}
		}
		for _, v := range before {
			if !slices.Contains(after, v) {
				fc.Removed = append(fc.Removed, v)
			}
		}
		out = append(out, fc)
	}
	list("status", []string{string(old.Status)}, []string{string(r.Status)})
	list("ns", old.NS, r.NS)
	list("mx", old.MX, r.MX)
	if old.NullMX != r.NullMX {
		list("null_mx", []string{strconv.FormatBool(old.NullMX)}, []string{strconv.FormatBool(r.NullMX)})
	}
	if old.AcceptsMail != nil && r.AcceptsMail != nil && *old.AcceptsMail != *r.AcceptsMail {
		list("accepts_mail", []string{strconv.FormatBool(*old.AcceptsMail)}, []string{strconv.FormatBool(*r.AcceptsMail)})
	}
	list("a", old.A, r.A)
	list("aaaa", old.AAAA, r.AAAA)
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// WriteDeny writes the lookalikes that would take mail (exposed, accepting
// mail) and lie outside the protected space, one a line as
// "DOMAIN ORIGINAL # kind, MX …": the first field is the domain to block,
// the second the domain it imitates.
func WriteDeny(w io.Writer, results []Result, protected []string, now time.Time) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# stray scan: registered lookalikes that accept mail, %s\n# DOMAIN ORIGINAL # why\n", now.UTC().Format(time.RFC3339))
	for _, r := range results {
		if !r.Status.Exposed() || r.AcceptsMail == nil || !*r.AcceptsMail || inside(r.Domain, protected) {
			continue
		}
		why := r.Kind + ", " + string(r.Status)
		if len(r.MX) > 0 {
			why += ", MX " + strings.Join(r.MX, " ")
		}
		if r.SMTP != nil && r.SMTP.Accepted {
			why += ", catch-all"
		}
		fmt.Fprintf(bw, "%s %s # %s\n", r.Domain, r.Original, why)
	}
	return bw.Flush()
}

// inside reports whether d is one of the protected domains or below one.
func inside(d string, protected []string) bool {
	for _, p := range protected {
		if d == p || strings.HasSuffix(d, "."+p) {
			return true
		}
	}
	return false
}
