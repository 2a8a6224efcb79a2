package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// field is one key and value of an event's detail.
type field struct{ Key, Value string }

// detailFields renders an event detail that is a JSON object (a decision
// event) as its fields in key order, values as text: people read
// "verdict hold", not {"verdict":"hold",...} wrapped mid-word. A detail
// that is not a JSON object gives nil and is shown as it is.
func detailFields(detail string) []field {
	if !strings.HasPrefix(strings.TrimSpace(detail), "{") {
		return nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(detail), &m) != nil || len(m) == 0 {
		return nil
	}
	return detailFieldsOf(m)
}

// fieldText is a JSON value as text: strings bare, lists joined by commas,
// objects as their fields, whole numbers without a decimal point.
func fieldText(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
		return fmt.Sprintf("%.2f", x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fieldText(e)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		var parts []string
		for _, f := range detailFieldsOf(x) {
			parts = append(parts, f.Key+": "+f.Value)
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprint(v)
}

func detailFieldsOf(m map[string]any) []field {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]field, 0, len(keys))
	for _, k := range keys {
		out = append(out, field{Key: k, Value: fieldText(m[k])})
	}
	return out
}
