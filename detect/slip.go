package detect

import (
	"fmt"
	"math"
	"sync"

	"github.com/stray-mail/stray/internal/knowledge"
)

// editOp is the single edit that turns the intended domain into the typed one.
type editOp uint8

const (
	opNone      editOp = iota
	opOmit             // a character of intended is missing
	opInsert           // typed has an extra character
	opSubst            // one character replaced
	opTranspose        // two neighbours swapped
)

// edit describes how typed differs from intended by exactly one operation.
type edit struct {
	op   editOp
	pos  int  // position in intended (omit, subst, transpose) or typed (insert)
	want byte // the intended character (omit, subst)
	got  byte // the typed character (insert, subst)
}

// oneEdit finds the single Damerau edit between typed and intended, if any.
func oneEdit(typed, intended string) (edit, bool) {
	lt, li := len(typed), len(intended)
	i := 0
	for i < lt && i < li && typed[i] == intended[i] {
		i++
	}
	switch {
	case lt == li:
		if i == lt {
			return edit{}, false
		}
		if typed[i+1:] == intended[i+1:] {
			return edit{op: opSubst, pos: i, want: intended[i], got: typed[i]}, true
		}
		if i+1 < lt && typed[i] == intended[i+1] && typed[i+1] == intended[i] && typed[i+2:] == intended[i+2:] {
			return edit{op: opTranspose, pos: i}, true
		}
	case lt == li-1:
		if typed[i:] == intended[i+1:] {
			return edit{op: opOmit, pos: i, want: intended[i]}, true
		}
	case lt == li+1:
		if typed[i+1:] == intended[i:] {
			return edit{op: opInsert, pos: i, got: typed[i]}, true
		}
	}
	return edit{}, false
}

// slipModel turns an edit into a likelihood that a person made it, using
// keyboard geometry: hitting a neighbouring key is far more common than an
// arbitrary substitution, and dropping one of a doubled letter is the most
// common omission.
type slipModel struct {
	adj    []*knowledge.Adjacency // most common layout first
	counts *knowledge.EditCounts  // Norvig's spelling-error counts
	logMax float64
}

func newSlipModel() *slipModel {
	m := &slipModel{counts: knowledge.Norvig()}
	m.logMax = math.Log1p(float64(m.counts.Max()))
	for _, l := range knowledge.Layouts() {
		m.adj = append(m.adj, l.Adjacent())
	}
	return m
}

// adjacent reports whether a and b touch on the first layout (primary) or on
// any layout.
func (m *slipModel) adjacent(a, b byte) (primary, any bool) {
	if a >= 128 || b >= 128 {
		return false, false
	}
	for i, adj := range m.adj {
		if adj[a][b] {
			return i == 0, true
		}
	}
	return false, false
}

func isVowel(c byte) bool {
	switch c {
	case 'a', 'e', 'i', 'o', 'u', 'y':
		return true
	}
	return false
}

// lookalike ASCII pairs people misread or mistype by sight.
func asciiLookalike(a, b byte) bool {
	if a > b {
		a, b = b, a
	}
	switch string([]byte{a, b}) {
	case "0o", "1l", "1i", "il", "5s", "2z", "8b", "0d", "uv", "gq", "ce":
		return true
	}
	return false
}

// slip is one explanation of a typo: its reason kind, likelihood and a
// sentence for the sender.
type slip struct {
	kind string
	p    float64
	why  string
}

// Spelling slips: Norvig's counts of real misspellings (Birkbeck corpus)
// give how often people write one letter for another by sound or habit (e
// for a, i for e), or add or drop a letter after another. A pattern seen n
// times gets phoneticBase + phoneticSpan·ln(1+n)/ln(1+max): the commonest
// (e for i, 917 times) 0.55, below a neighbouring key on any layout (0.6);
// one seen 50 times 0.38; one seen once 0.19, about an arbitrary insertion.
const (
	phoneticBase = 0.15
	phoneticSpan = 0.4
)

// phonetic is the likelihood of a spelling slip from its count.
func (m *slipModel) phonetic(typed, intended string) float64 {
	n := m.counts.Count(typed, intended)
	if n == 0 {
		return 0
	}
	return phoneticBase + phoneticSpan*math.Log1p(float64(n))/m.logMax
}

// explainSpelling classifies the edit from intended to typed: the keyboard
// and sight explanation, or the spelling slip when people make that one
// more often. The error model's further explanations (model.go) use it; the
// one-slip index keeps explain, on whose scale its thresholds were set (a
// correspondent's vowel swap stays a warning).
func (m *slipModel) explainSpelling(typed, intended string, e edit) slip {
	s := m.explain(typed, intended, e)
	var ph float64
	var why string
	kind := KindSubstitution
	switch e.op {
	case opSubst:
		ph = m.phonetic(string(e.got), string(e.want))
		why = fmt.Sprintf("%q was written for %q, a common spelling slip", e.got, e.want)
	case opOmit:
		if e.pos > 0 {
			prev := intended[e.pos-1]
			ph = m.phonetic(string(prev), string([]byte{prev, e.want}))
			kind = KindOmission
			why = fmt.Sprintf("the %q after %q is left out, a common spelling slip", e.want, prev)
		}
	case opInsert:
		if e.pos > 0 {
			prev := typed[e.pos-1]
			ph = m.phonetic(string([]byte{prev, e.got}), string(prev))
			kind = KindInsertion
			why = fmt.Sprintf("an extra %q after %q, a common spelling slip", e.got, prev)
		}
	}
	if ph > s.p {
		return slip{kind, ph, why}
	}
	return s
}

// explain classifies the edit by keyboard geometry and sight.
func (m *slipModel) explain(typed, intended string, e edit) slip {
	switch e.op {
	case opTranspose:
		a, b := intended[e.pos], intended[e.pos+1]
		if a == '.' || b == '.' {
			return slip{KindShiftedDot, 0.85, fmt.Sprintf("the dot is shifted: %s for %s", typed, intended)}
		}
		return slip{KindTransposition, 0.85, fmt.Sprintf("%q and %q are swapped", a, b)}
	case opOmit:
		c := e.want
		if c == '.' {
			return slip{KindMissingDot, 0.75, "a dot is missing"}
		}
		if (e.pos > 0 && intended[e.pos-1] == c) || (e.pos+1 < len(intended) && intended[e.pos+1] == c) {
			return slip{KindOmission, 0.85, fmt.Sprintf("one %q of a double letter is missing", c)}
		}
		return slip{KindOmission, 0.6, fmt.Sprintf("the letter %q is missing", c)}
	case opInsert:
		c := e.got
		var prev, next byte
		if e.pos > 0 {
			prev = typed[e.pos-1]
		}
		if e.pos+1 < len(typed) {
			next = typed[e.pos+1]
		}
		if c == '.' {
			return slip{KindExtraDot, 0.55, "there is an extra dot"}
		}
		if c == prev || c == next {
			return slip{KindRepetition, 0.75, fmt.Sprintf("the letter %q is doubled", c)}
		}
		p1, a1 := m.adjacent(c, prev)
		p2, a2 := m.adjacent(c, next)
		switch {
		case p1 || p2:
			return slip{KindKeyboardSlip, 0.7, fmt.Sprintf("an extra %q, a neighbouring key, was typed", c)}
		case a1 || a2:
			return slip{KindKeyboardSlip, 0.55, fmt.Sprintf("an extra %q, a neighbouring key on some keyboards, was typed", c)}
		}
		return slip{KindInsertion, 0.2, fmt.Sprintf("an extra %q was typed", c)}
	case opSubst:
		a, b := e.want, e.got
		if a == '.' || b == '.' {
			return slip{KindSubstitution, 0.3, fmt.Sprintf("%q was typed for %q", b, a)}
		}
		prim, anyAdj := m.adjacent(a, b)
		switch {
		case prim:
			return slip{KindKeyboardSlip, 0.75, fmt.Sprintf("%q was typed for %q, its neighbour on the keyboard", b, a)}
		case anyAdj:
			return slip{KindKeyboardSlip, 0.6, fmt.Sprintf("%q was typed for %q, its neighbour on QWERTZ/AZERTY keyboards", b, a)}
		case asciiLookalike(a, b):
			return slip{KindHomoglyph, 0.6, fmt.Sprintf("%q looks like %q", b, a)}
		case isVowel(a) && isVowel(b):
			return slip{KindSubstitution, 0.35, fmt.Sprintf("the vowel %q was typed for %q", b, a)}
		case bitFlip(a, b):
			return slip{KindBitFlip, 0.2, fmt.Sprintf("%q differs from %q by one bit", b, a)}
		}
		return slip{KindSubstitution, 0.15, fmt.Sprintf("%q was typed for %q", b, a)}
	}
	return slip{}
}

func bitFlip(a, b byte) bool {
	x := a ^ b
	return x != 0 && x&(x-1) == 0
}

var defaultSlips = sync.OnceValue(newSlipModel)

// Slip explains typed as a one-slip typo of intended under stray's typo
// model: the reason kind (KindTransposition, KindKeyboardSlip…) and how
// likely a person is to make that slip (0..1). ok is false when the two are
// not exactly one edit (omission, insertion, substitution, transposition)
// apart. Other tools (lookalike generation) use it to rank candidates the way
// the engine does.
func Slip(typed, intended string) (kind string, likelihood float64, ok bool) {
	e, ok := oneEdit(typed, intended)
	if !ok {
		return "", 0, false
	}
	s := defaultSlips().explain(typed, intended, e)
	return s.kind, s.p, true
}
