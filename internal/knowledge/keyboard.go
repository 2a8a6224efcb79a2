package knowledge

import "math"

// A Layout is a keyboard layout as rows of keys, with each row's horizontal
// offset in key widths (the stagger of a physical keyboard).
type Layout struct {
	Name   string
	rows   []string
	offset []float64
}

// Built-in layouts: the three families that cover most typists of Latin
// script mail addresses.
var (
	QWERTY = Layout{Name: "qwerty", rows: []string{"1234567890-", "qwertyuiop", "asdfghjkl", "zxcvbnm"}, offset: []float64{0, 0.5, 0.75, 1.25}}
	QWERTZ = Layout{Name: "qwertz", rows: []string{"1234567890-", "qwertzuiop", "asdfghjkl", "yxcvbnm"}, offset: []float64{0, 0.5, 0.75, 1.25}}
	AZERTY = Layout{Name: "azerty", rows: []string{"1234567890-", "azertyuiop", "qsdfghjklm", "wxcvbn"}, offset: []float64{0, 0.5, 0.75, 1.25}}
)

// Layouts lists the built-in layouts, most common first.
func Layouts() []Layout { return []Layout{QWERTY, QWERTZ, AZERTY} }

// Adjacency is a 128×128 table: Adjacency[a][b] is true when keys a and b
// are neighbours: next to each other in a row, or in the rows above and
// below within one key of it, counted both on the staggered physical
// keyboard and on the plain grid of rows, since fingers slip diagonally
// either way.
type Adjacency [128][128]bool

// Adjacent builds the adjacency table of a layout.
func (l Layout) Adjacent() *Adjacency {
	type pos struct{ x, y, col float64 }
	at := map[byte]pos{}
	for y, row := range l.rows {
		for x := 0; x < len(row); x++ {
			at[row[x]] = pos{float64(x) + l.offset[y], float64(y), float64(x)}
		}
	}
	var adj Adjacency
	for a, pa := range at {
		for b, pb := range at {
			if a == b {
				continue
			}
			dx, dy := math.Abs(pa.x-pb.x), math.Abs(pa.y-pb.y)
			if (dy == 0 && dx <= 1.01) || (dy == 1 && (dx <= 1.0 || math.Abs(pa.col-pb.col) <= 1)) {
				adj[a][b] = true
			}
		}
	}
	return &adj
}

// TLDConfusions lists, for a TLD people mean, the real country TLDs a single
// slip turns it into. Mail sent there is delivered to a stranger instead of
// bouncing: army.mil → army.ml (Mali) or army.il (Israel), example.com →
// example.co (Colombia), example.cm (Cameroon), example.om (Oman).
var TLDConfusions = map[string][]string{
	"mil": {"ml", "il", "mi", "mit"},
	"com": {"co", "cm", "om", "cam", "comm"},
	"net": {"ne", "nt", "et"},
	"org": {"or", "og", "rg"},
	"gov": {"go", "gv"},
	"edu": {"ed", "du"},
}

// IsConfusionTLD reports whether tld is one of the TLDConfusions targets.
func IsConfusionTLD(tld string) bool {
	for _, list := range TLDConfusions {
		for _, t := range list {
			if t == tld {
				return true
			}
		}
	}
	return false
}

// PopularTLDs are the TLDs mail is most often addressed to, most popular
// first. A domain under a TLD that does not exist is corrected towards these.
var PopularTLDs = []string{"com", "net", "org", "de", "uk", "fr", "it", "ru", "br", "nl", "es", "au", "ca", "pl", "jp", "in", "edu", "gov", "mil", "ch", "be", "at", "se", "cz", "us", "info", "io", "co"}
