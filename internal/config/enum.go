package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LogLevel is the least severe log record written (log.level).
type LogLevel string

const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// Check reports whether l is a level; "" is the default, info.
func (l LogLevel) Check() error {
	switch l {
	case "", LogDebug, LogInfo, LogWarn, LogError:
		return nil
	}
	return fmt.Errorf("%q: want debug, info, warn or error", string(l))
}

// UnmarshalText accepts debug, info, warn or error.
func (l *LogLevel) UnmarshalText(b []byte) error { return unmarshalEnum(l, b) }

// LogFormat is how log records are written (log.format).
type LogFormat string

const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// Check reports whether f is a format; "" is the default, text.
func (f LogFormat) Check() error {
	switch f {
	case "", LogText, LogJSON:
		return nil
	}
	return fmt.Errorf("%q: want text or json", string(f))
}

// UnmarshalText accepts text or json.
func (f *LogFormat) UnmarshalText(b []byte) error { return unmarshalEnum(f, b) }

// NextHopTLS is STARTTLS to the relay's next hop (relay.next_hop_tls).
type NextHopTLS string

const (
	NextHopTLSNone          NextHopTLS = "none"
	NextHopTLSOpportunistic NextHopTLS = "opportunistic"
	NextHopTLSRequired      NextHopTLS = "required"
)

// Check reports whether t is a choice; "" is the default, opportunistic.
func (t NextHopTLS) Check() error {
	switch t {
	case "", NextHopTLSNone, NextHopTLSOpportunistic, NextHopTLSRequired:
		return nil
	}
	return fmt.Errorf("%q: want none, opportunistic or required", string(t))
}

// UnmarshalText accepts none, opportunistic or required.
func (t *NextHopTLS) UnmarshalText(b []byte) error { return unmarshalEnum(t, b) }

// unmarshalEnum sets *e to b when its Check accepts it. The error is the
// value and the allowed ones; Parse adds the field path.
func unmarshalEnum[E interface {
	~string
	Check() error
}](e *E, b []byte) error {
	v := E(b)
	if err := v.Check(); err != nil {
		return err
	}
	*e = v
	return nil
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// decodeProblems finds, with its field path, every value of the YAML
// document data that the type it decodes into refuses as text: an enum's
// unknown word (policy.actions.block: "explode": want …), a bad duration.
// The YAML decoder stops at the first such value and names no field. It
// also returns the document without those keys (each then keeps its
// default), so that the rest can still be decoded and validated: every
// problem is reported at once.
func decodeProblems(data []byte) (Problems, []byte) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil, nil
	}
	w := textWalker{budget: 1 << 20} // aliases can make a small file a large tree
	w.walk(&doc, reflect.TypeFor[Config](), "")
	if len(w.problems) == 0 {
		return nil, nil
	}
	cleaned, err := yaml.Marshal(&doc)
	if err != nil {
		return w.problems, nil
	}
	return w.problems, cleaned
}

type textWalker struct {
	problems Problems
	budget   int
}

// refused is the error of the TextUnmarshaler of type t for the scalar n,
// if t has one and refuses it.
func refused(n *yaml.Node, t reflect.Type) error {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" || !reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return nil
	}
	return reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value))
}

func (w *textWalker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n == nil || w.budget <= 0 {
		return
	}
	w.budget--
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			w.walk(c, t, path)
		}
		return
	case yaml.AliasNode:
		w.walk(n.Alias, t, path)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				w.walk(v, t, path)
			} else if f, ok := fieldByYAMLName(t, k.Value); ok {
				p := joinPath(path, k.Value)
				if err := refused(v, f.Type); err != nil {
					w.problems = append(w.problems, fmt.Sprintf("%s: %v", p, err))
					continue // dropped: the field keeps its default
				}
				w.walk(v, f.Type, p)
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := refused(k, t.Key()); err != nil {
				w.problems = append(w.problems, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			p := joinPath(path, k.Value)
			if err := refused(v, t.Elem()); err != nil {
				w.problems = append(w.problems, fmt.Sprintf("%s: %v", p, err))
				continue
			}
			w.walk(v, t.Elem(), p)
			kept = append(kept, k, v)
		}
		n.Content = kept
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if err := refused(c, t.Elem()); err != nil {
				w.problems = append(w.problems, fmt.Sprintf("%s: %v", p, err))
				*c = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "~"}
				continue
			}
			w.walk(c, t.Elem(), p)
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content { // a merge of several mappings
			w.walk(c, t, path)
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldByYAMLName is t's field that the YAML key name decodes into.
func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
