package detect

import (
	"encoding/json"
	"fmt"
)

// Verdict is how sure stray is that a recipient is a mistake, and so what a
// gate should do with it.
type Verdict uint8

const (
	// OK: no reason to doubt the recipient.
	OK Verdict = iota
	// Warn: a weak signal; deliver, but tell someone.
	Warn
	// Hold: a likely typo; ask the sender before delivering.
	Hold
	// Block: near-certain and leaking (a lookalike of the sender's own
	// domain outside its space, a homoglyph), or an explicit deny rule.
	Block
)

var verdictNames = [...]string{"ok", "warn", "hold", "block"}

// Invalid is the verdict front ends report for an address that cannot be
// parsed (Check returns an error). It is not a Verdict of the engine, which
// judges only addresses it can read, but it must never read as ok: a caller
// looking only at the verdict would be told a broken address is fine.
const Invalid = "invalid"

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", v)
}

// MarshalText implements encoding.TextMarshaler.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verdict) UnmarshalText(b []byte) error {
	p, err := ParseVerdict(string(b))
	*v = p
	return err
}

// ParseVerdict parses "ok", "warn", "hold" or "block".
func ParseVerdict(s string) (Verdict, error) {
	for i, n := range verdictNames {
		if n == s {
			return Verdict(i), nil
		}
	}
	return OK, fmt.Errorf("detect: unknown verdict %q (want ok, warn, hold or block)", s)
}

// Reason kinds: machine-readable names of why a recipient was flagged.
const (
	KindTLDConfusion       = "tld-confusion"        // a real TLD one slip from the intended one (mil → ml)
	KindNonexistentTLD     = "nonexistent-tld"      // the TLD does not exist (.con)
	KindKeyboardSlip       = "keyboard-slip"        // a neighbouring key hit instead of or next to the right one
	KindOmission           = "omission"             // a character left out
	KindRepetition         = "repetition"           // a character typed twice
	KindInsertion          = "insertion"            // an unrelated extra character
	KindSubstitution       = "substitution"         // an unrelated character replaced
	KindTwoSlips           = "two-slips"            // two slips in one distinctive name: yhaooo for yahoo
	KindOtherTLD           = "other-tld"            // a provider's name under a TLD it does not use for mail: hotmial.net
	KindDoubledSuffix      = "doubled-suffix"       // the suffix typed twice or glued on: gmail.com.com, gmailcom.com
	KindDiacritic          = "diacritic"            // accented letters for plain ones: gmàil.com
	KindTransposition      = "transposition"        // two characters swapped
	KindMissingDot         = "missing-dot"          // uscompany.com for us.company.com
	KindExtraDot           = "extra-dot"            // g.mail.com
	KindShiftedDot         = "shifted-dot"          // gmailc.om
	KindBitFlip            = "bit-flip"             // one bit of one character flipped
	KindHomoglyph          = "homoglyph"            // looks the same, different characters (Cyrillic а)
	KindMixedScript        = "mixed-script"         // a label mixing scripts
	KindPunycode           = "punycode"             // written in its xn-- form
	KindProtectedLookalike = "protected-lookalike"  // lookalike of the organisation's own domain, outside it
	KindCorrespondent      = "correspondent"        // lookalike of a domain the organisation writes to
	KindProvider           = "provider"             // lookalike of a popular mail provider
	KindRegistered         = "registered-lookalike" // a lookalike known to exist and accept mail (stray scan)
)

// Reason is one machine-readable kind with a sentence for people.
type Reason struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Finding is the engine's answer for one recipient.
type Finding struct {
	// Address is the recipient as normalised (ASCII domain).
	Address string
	// Domain is the recipient's domain, ASCII (A-label) form.
	Domain  string
	Verdict Verdict
	// Intended is the domain the sender most likely meant ("" when OK).
	Intended string
	// Suggestion is the corrected address ("" when OK).
	Suggestion string
	// Score is the likelihood that the recipient is a mistake, 0..1.
	Score   float64
	Reasons []Reason
}

// Flagged reports whether the verdict is anything but OK.
func (f Finding) Flagged() bool { return f.Verdict != OK }

// MarshalJSON writes the DESIGN.md contract: intended and suggestion are null
// when there is none, reasons is always a list.
func (f Finding) MarshalJSON() ([]byte, error) {
	type out struct {
		Address    string   `json:"address"`
		Verdict    Verdict  `json:"verdict"`
		Intended   *string  `json:"intended"`
		Suggestion *string  `json:"suggestion"`
		Score      float64  `json:"score"`
		Reasons    []Reason `json:"reasons"`
	}
	o := out{Address: f.Address, Verdict: f.Verdict, Score: f.Score, Reasons: f.Reasons}
	if f.Intended != "" {
		o.Intended = &f.Intended
	}
	if f.Suggestion != "" {
		o.Suggestion = &f.Suggestion
	}
	if o.Reasons == nil {
		o.Reasons = []Reason{}
	}
	return json.Marshal(o)
}
