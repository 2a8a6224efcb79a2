package api

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/policy"
)

// The OpenAPI file is checked against the code, so that it cannot go stale:
// its paths, methods and statuses are the handler's routes, and its schemas'
// properties are the Go structs' JSON fields.

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(OpenAPI()))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.yaml is not valid YAML: %v", err)
	}
	return doc
}

// at walks a decoded YAML document along keys.
func at(t *testing.T, doc any, keys ...string) any {
	t.Helper()
	cur := doc
	for i, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("openapi.yaml: %s is not a mapping", strings.Join(keys[:i], "."))
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("openapi.yaml: no %s", strings.Join(keys[:i+1], "."))
		}
	}
	return cur
}

func mapping(t *testing.T, doc any, keys ...string) map[string]any {
	t.Helper()
	m, ok := at(t, doc, keys...).(map[string]any)
	if !ok {
		t.Fatalf("openapi.yaml: %s is not a mapping", strings.Join(keys, "."))
	}
	return m
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	slices.Sort(out)
	return out
}

func TestOpenAPIIsValidAndVersioned(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if v := at(t, doc, "openapi"); !strings.HasPrefix(fmt.Sprint(v), "3.1") {
		t.Errorf("openapi %v, want 3.1.x", v)
	}
	servers, _ := at(t, doc, "servers").([]any)
	if len(servers) != 1 || fmt.Sprint(at(t, servers[0], "url"))+"/" != Prefix {
		t.Errorf("servers %v, want one with url %s", servers, strings.TrimSuffix(Prefix, "/"))
	}
	if v := fmt.Sprint(at(t, doc, "info", "version")); v != "1" || !strings.HasSuffix(Prefix, "/v"+v+"/") {
		t.Errorf("info.version %q does not match %s", v, Prefix)
	}
	if s := mapping(t, doc, "components", "securitySchemes", "bearer"); s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("bearer scheme %v", s)
	}
	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref := fmt.Sprint(x)
					if !strings.HasPrefix(ref, "#/") {
						t.Errorf("external $ref %s", ref)
						continue
					}
					at(t, doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

func TestOpenAPIDocumentsEveryRouteAndStatus(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	paths := mapping(t, doc, "paths")
	served := map[string]bool{}
	for _, rt := range routes() {
		p := "/" + strings.TrimPrefix(rt.Path, Prefix)
		m := strings.ToLower(rt.Method)
		served[p+" "+m] = true
		op, ok := paths[p].(map[string]any)[m].(map[string]any)
		if !ok {
			t.Errorf("openapi.yaml does not document %s %s", rt.Method, p)
			continue
		}
		var documented []int
		for code := range mapping(t, op, "responses") {
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s %s: response %q is not a status code", rt.Method, p, code)
			}
			documented = append(documented, n)
		}
		slices.Sort(documented)
		if !slices.Equal(documented, rt.Statuses) {
			t.Errorf("%s %s: openapi.yaml documents %v, the handler answers %v", rt.Method, p, documented, rt.Statuses)
		}
		// Authentication is documented where it is required.
		_, public := op["security"]
		if needsAuth := rt.Method == "POST"; needsAuth == public {
			t.Errorf("%s %s: security documented wrongly (public %v)", rt.Method, p, public)
		}
	}
	for p, ops := range paths {
		for m := range ops.(map[string]any) {
			if !served[p+" "+m] {
				t.Errorf("openapi.yaml documents %s %s, which the handler does not serve", strings.ToUpper(m), p)
			}
		}
	}
	// 404 and 405 can happen anywhere: documented once.
	for _, name := range []string{"NotFound", "MethodNotAllowed"} {
		r := mapping(t, doc, "components", "responses", name)
		if at(t, r, "content", "application/json", "schema", "$ref") != "#/components/schemas/Error" {
			t.Errorf("components.responses.%s is not an Error", name)
		}
	}
	fx := newFixture(t, nil)
	if w := fx.do(req{method: "GET", path: "/api/v1/nothing"}); w.Code != 404 {
		t.Errorf("unknown path: %d", w.Code)
	}
	if w := fx.do(req{method: "DELETE", path: "/api/v1/check"}); w.Code != 405 {
		t.Errorf("unknown method: %d", w.Code)
	}
}

// jsonFields returns a struct type's JSON field names, and those without
// omitempty (always present, so required in the schema).
func jsonFields(t reflect.Type) (all, always []string) {
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || name == "" {
			continue
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") {
			always = append(always, name)
		}
	}
	slices.Sort(all)
	slices.Sort(always)
	return all, always
}

func TestOpenAPISchemasMatchTheGoTypes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for _, tc := range []struct {
		schema string
		typ    any
		// request schemas require what the server requires, not what
		// the Go type always has
		required []string
	}{
		{schema: "CheckRequest", typ: CheckRequest{}, required: []string{"recipients"}},
		{schema: "CheckResponse", typ: CheckResponse{}},
		{schema: "Result", typ: Result{}},
		{schema: "Reason", typ: detect.Reason{}},
		{schema: "Error", typ: ErrorResponse{}},
	} {
		s := mapping(t, doc, "components", "schemas", tc.schema)
		var props []string
		for p := range mapping(t, s, "properties") {
			props = append(props, p)
		}
		slices.Sort(props)
		all, always := jsonFields(reflect.TypeOf(tc.typ))
		if !slices.Equal(props, all) {
			t.Errorf("schema %s has properties %v, the Go type %v", tc.schema, props, all)
		}
		want := always
		if tc.required != nil {
			want = tc.required
		}
		if got := strs(s["required"]); !slices.Equal(got, want) {
			t.Errorf("schema %s requires %v, want %v", tc.schema, got, want)
		}
	}
	// The Result's stray check fields are exactly those of
	// detect.Finding's JSON (the `stray check --format json` contract).
	var fj map[string]any
	b, _ := detect.Finding{}.MarshalJSON()
	if err := yaml.Unmarshal(b, &fj); err != nil {
		t.Fatal(err)
	}
	res := mapping(t, doc, "components", "schemas", "Result", "properties")
	for k := range fj {
		if _, ok := res[k]; !ok {
			t.Errorf("Result lacks Finding field %q", k)
		}
	}
	// Enums are the Go names.
	var verdicts, actions []string
	for v := detect.OK; v <= detect.Block; v++ {
		verdicts = append(verdicts, v.String())
	}
	verdicts = append(verdicts, detect.Invalid)
	for a := policy.Pass; a <= policy.Reject; a++ {
		actions = append(actions, a.String())
	}
	slices.Sort(verdicts)
	slices.Sort(actions)
	if got := strs(at(t, res, "verdict", "enum")); !slices.Equal(got, verdicts) {
		t.Errorf("verdict enum %v, want %v", got, verdicts)
	}
	if got := strs(at(t, res, "action", "enum")); !slices.Equal(got, actions) {
		t.Errorf("action enum %v, want %v", got, actions)
	}
	if strings.Contains(detect.Block.String(), "(") || strings.Contains(policy.Reject.String(), "(") {
		t.Error("enum ranges out of date")
	}
	// Limits in the schema are the code's.
	rc := mapping(t, doc, "components", "schemas", "CheckRequest", "properties", "recipients")
	if rc["minItems"] != 1 || rc["maxItems"] != MaxRecipients {
		t.Errorf("recipients minItems %v maxItems %v, want 1 and %d", rc["minItems"], rc["maxItems"], MaxRecipients)
	}
}
