package api

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// FuzzCheckRequest feeds arbitrary bodies (and content types) to the check
// handler: it must never panic, must answer one of the statuses it
// declares, always in JSON, and for 200 one result per recipient.
func FuzzCheckRequest(f *testing.F) {
	for _, s := range []string{
		`{"recipients":["b@army.ml","j@gmial.com","ok@ymail.com"]}`,
		`{"sender":"a@army.mil","recipients":["Bob <b@army.ml>"]}`,
		`{"recipients":["k@gmаil.com","a@xn--gmil-63d.com","\"q r\"@gmial.com"]}`,
		`{"recipients":[""," ","@","a@","@b","a@b@c","\u0000@x.com"]}`,
		`{"recipients":[]}`, `{"recipients":null}`, `null`, `[]`, `{}`, ``, `{"recipients":[1,true,null]}`,
		`{"recipients":["a@b.c"]} {}`, `{"recipients":["a@b.c"],"x":1}`, `{"sender":"x","recipients":["a@b.c"]}`,
		`{"recipients":["` + strings.Repeat("a", 70000) + `"]}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{"recipients":["a@b.c"]}`), "text/plain")
	f.Add([]byte(`{"recipients":["a@b.c"]}`), "application/json; charset=\"utf-8\"")
	fx := newFixture(f, func(c *Config) { c.Rate = -1 })
	var allowed []int
	for _, rt := range routes() {
		if rt.Method == "POST" {
			allowed = rt.Statuses
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		r := httptest.NewRequest("POST", "/api/v1/check", strings.NewReader(string(body)))
		r.Header.Set("Authorization", "Bearer "+fx.token)
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		if !slices.Contains(allowed, w.Code) || w.Code == 401 || w.Code == 429 || w.Code == 503 {
			t.Fatalf("status %d for %q (%q): %s", w.Code, body, ctype, w.Body)
		}
		if w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", w.Header().Get("Content-Type"))
		}
		if w.Code != 200 {
			var e ErrorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("error body %q: %v", w.Body, err)
			}
			return
		}
		var req CheckRequest
		json.Unmarshal(body, &req)
		var resp struct {
			Results []map[string]any `json:"results"`
			Flagged int              `json:"flagged"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
		if len(resp.Results) != len(req.Recipients) {
			t.Fatalf("%d results for %d recipients", len(resp.Results), len(req.Recipients))
		}
		flagged := 0
		for _, res := range resp.Results {
			if res["verdict"] != "ok" {
				flagged++
				if res["message"] == nil || res["action"] == nil {
					t.Fatalf("flagged without message or action: %v", res)
				}
			}
		}
		if flagged != resp.Flagged {
			t.Fatalf("flagged %d, counted %d", resp.Flagged, flagged)
		}
	})
}
