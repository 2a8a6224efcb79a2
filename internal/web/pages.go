package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/audit"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/scan"
	"github.com/stray-mail/stray/internal/store"
)

var (
	verdicts = []string{"ok", "warn", "hold", "block"}
	actions  = []string{"pass", "log", "warn", "hold", "tempfail", "reject"}
)

// overviewDays is how far back the overview looks.
const overviewDays = 30

// maxOverviewEvents bounds the flagged decisions the overview ranks.
const maxOverviewEvents = 5000

type overviewData struct {
	Days                 int
	Decided, Flagged     int64
	ByVerdictN           map[string]int64
	Waiting              int
	WaitingMore          bool
	ByVerdict, ByAction  stackChart
	Domains, Senders     barList
	Held                 []store.Message
	Capped               bool
	FlaggedEvents        int
	VerdictKeys, Actions []string
}

func (s *Server) view(u *session, title, nav string) view {
	return view{Title: title, Nav: nav, User: u.user, CSRF: u.csrf, Admin: u.user.Role == store.RoleAdmin}
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, u *session) {
	ctx := r.Context()
	now := s.o.Now().UTC()
	last := now.Truncate(24 * time.Hour)
	first := last.AddDate(0, 0, -(overviewDays - 1))
	d := overviewData{Days: overviewDays, ByVerdictN: map[string]int64{}, VerdictKeys: verdicts, Actions: actions}
	counts, err := s.o.Store.DecisionCounts(ctx, first)
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	for _, c := range counts {
		d.Decided += c.N
		d.ByVerdictN[c.Verdict] += c.N
		if c.Verdict != "ok" {
			d.Flagged += c.N
		}
	}
	d.ByVerdict = dailyChart("Decisions per day by verdict", counts, first, last, verdicts,
		func(c store.DecisionCount) string { return c.Verdict }, nil)
	d.ByAction = dailyChart("Flagged recipients per day by action", counts, first, last, actions,
		func(c store.DecisionCount) string { return c.Action }, func(c store.DecisionCount) bool { return c.Verdict != "ok" })

	evs, err := s.o.Store.Events(ctx, store.EventFilter{Kind: "decision", Since: first, Limit: maxOverviewEvents})
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	d.FlaggedEvents, d.Capped = len(evs), len(evs) == maxOverviewEvents
	domains, senders := map[string]*rankItem{}, map[string]*rankItem{}
	for _, ev := range evs {
		var dec hold.Decision
		if json.Unmarshal([]byte(ev.Detail), &dec) != nil || dec.Verdict == "" || dec.Verdict == "ok" {
			continue
		}
		dom := domainOf(dec.Recipient)
		it := domains[dom]
		if it == nil {
			it = &rankItem{Label: dom, Class: "c-" + dec.Verdict, Link: "/quarantine?q=" + url.QueryEscape("@"+dom)}
			if dec.Intended != "" {
				it.Note = "→ " + dec.Intended
			}
			domains[dom] = it
		}
		it.N++
		if dec.Sender != "" {
			sit := senders[dec.Sender]
			if sit == nil {
				sit = &rankItem{Label: dec.Sender, Class: "c-sender", Link: "/quarantine?sender=" + url.QueryEscape(dec.Sender)}
				senders[dec.Sender] = sit
			}
			sit.N++
		}
	}
	d.Domains = ranked("Top lookalike domains", values(domains), 10)
	d.Senders = ranked("Top senders of flagged mail", values(senders), 10)

	held, err := s.o.Store.List(ctx, store.Filter{States: []store.State{store.StateHeld}, Limit: 1000})
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	d.Waiting, d.WaitingMore = len(held), len(held) == 1000
	if len(held) > 8 {
		held = held[:8]
	}
	d.Held = held
	v := s.view(u, "Overview", "overview")
	v.Data = d
	s.render(w, r, http.StatusOK, "overview", v)
}

func values(m map[string]*rankItem) []rankItem {
	out := make([]rankItem, 0, len(m))
	for _, it := range m {
		out = append(out, *it)
	}
	return out
}

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return strings.ToLower(a[i+1:])
	}
	return strings.ToLower(a)
}

func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, u *session, err error) {
	s.log.Error("dashboard: store", "path", r.URL.Path, "err", err)
	s.fail(w, r, u, http.StatusServiceUnavailable, "The store is not reachable; try again in a moment.")
}

type quarantineData struct {
	Messages []store.Message
	State    string
	Q        string
	Sender   string
	States   []string
	Older    string // the "older" link's before= value, "" when none
	OlderID  string // and its before_id=
}

const pageSize = 50

// messageID is what a held message's id may be (or empty).
var messageID = regexp.MustCompile(`^[0-9A-Za-z_-]{0,64}$`)

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request, u *session) {
	q := r.URL.Query()
	d := quarantineData{State: q.Get("state"), Q: strings.TrimSpace(q.Get("q")), Sender: strings.TrimSpace(q.Get("sender")),
		States: []string{"held", "releasing", "released", "discarded", "expired", "all"}}
	if d.State == "" {
		d.State = "held"
	}
	f := store.Filter{Search: d.Q, Sender: d.Sender, Limit: pageSize + 1}
	if d.State != "all" {
		st := store.State(d.State)
		switch st {
		case store.StateHeld, store.StateReleasing, store.StateReleased, store.StateDiscarded, store.StateExpired:
		default:
			s.fail(w, r, u, http.StatusBadRequest, "Unknown state "+strconv.Quote(d.State)+".")
			return
		}
		f.States = []store.State{st}
	}
	if b := q.Get("before"); b != "" {
		t, err := time.Parse(time.RFC3339Nano, b)
		if id := q.Get("before_id"); err == nil && !messageID.MatchString(id) {
			err = fmt.Errorf("bad before_id")
		}
		if err != nil {
			s.fail(w, r, u, http.StatusBadRequest, "Bad paging position.")
			return
		}
		f.Before, f.BeforeID = t, q.Get("before_id")
	}
	ms, err := s.o.Store.List(r.Context(), f)
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	if len(ms) > pageSize {
		ms = ms[:pageSize]
		d.Older, d.OlderID = ms[len(ms)-1].CreatedAt.Format(time.RFC3339Nano), ms[len(ms)-1].ID
	}
	d.Messages = ms
	v := s.view(u, "Quarantine", "quarantine")
	v.Data = d
	s.render(w, r, http.StatusOK, "quarantine", v)
}

type messageData struct {
	M       *store.Message
	Headers []header
	Preview string
	Events  []store.Event
	Subject string
	Actions bool
	Allowed map[string]bool
	// Lookalikes maps a held recipient domain that imitates a protected
	// domain to the domain it imitates: no one-click allow for those.
	Lookalikes map[string]string
	MoreHead   int
}

type header struct{ Name, Value string }

// maxHeaders bounds the header fields shown.
const maxHeaders = 100

// headersOf returns the message's header fields, unfolded, as text (never
// interpreted: the template escapes them).
func headersOf(raw []byte) ([]header, int) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	var hs []header
	more := 0
	for {
		line, err := tp.ReadContinuedLine()
		if err != nil || line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if len(hs) >= maxHeaders {
			more++
			continue
		}
		if len(value) > 2000 {
			value = value[:2000] + "…"
		}
		hs = append(hs, header{Name: name, Value: strings.TrimSpace(strings.ToValidUTF8(value, "?"))})
	}
	return hs, more
}

func (s *Server) message(w http.ResponseWriter, r *http.Request, u *session) {
	ctx := r.Context()
	m, err := s.o.Store.Get(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, u, http.StatusNotFound, "No such message.")
		return
	}
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	evs, err := s.o.Store.Events(ctx, store.EventFilter{MessageID: m.ID, Limit: 200})
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	rules, err := s.o.Store.ListRules(ctx)
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	d := messageData{M: m, Preview: hold.Preview(m.Raw, 16<<10), Events: evs, Actions: m.State == store.StateHeld && s.o.Holder != nil,
		Allowed: map[string]bool{}}
	d.Headers, d.MoreHead = headersOf(m.Raw)
	for _, h := range d.Headers {
		if strings.EqualFold(h.Name, "Subject") {
			d.Subject = h.Value
		}
	}
	for _, rule := range rules {
		if rule.Kind == "allow" {
			d.Allowed[rule.Pattern] = true
		}
	}
	d.Lookalikes = map[string]string{}
	for _, rc := range m.Recipients {
		if _, dom, ok := strings.Cut(rc.Address, "@"); ok && s.o.Lookalike != nil {
			dom = strings.ToLower(dom)
			if intended, ok := s.o.Lookalike(dom, false); ok {
				d.Lookalikes[dom] = intended
			}
		}
	}
	v := s.view(u, "Held message", "quarantine")
	v.Data = d
	s.render(w, r, http.StatusOK, "message", v)
}

// actionNames are the quarantine actions and what they do.
var actionNames = map[string]string{
	"release": "released to the recipients as typed",
	"fix":     "re-sent to the suggested addresses",
	"discard": "discarded",
}

// apply does one quarantine action as the user.
func (s *Server) apply(r *http.Request, u *session, id, action string) error {
	actor := "admin:" + u.user.Name
	switch action {
	case "release":
		return s.o.Holder.Release(r.Context(), id, actor, false)
	case "fix":
		return s.o.Holder.Release(r.Context(), id, actor, true)
	case "discard":
		return s.o.Holder.Discard(r.Context(), id, actor)
	}
	return fmt.Errorf("unknown action %q", action)
}

func (s *Server) act(w http.ResponseWriter, r *http.Request, u *session) {
	id, action := r.PathValue("id"), r.PathValue("action")
	if _, ok := actionNames[action]; !ok || s.o.Holder == nil {
		s.fail(w, r, u, http.StatusNotFound, "No such action.")
		return
	}
	err := s.apply(r, u, id, action)
	switch {
	case errors.Is(err, hold.ErrNotHeld):
		s.fail(w, r, u, http.StatusConflict, "This message is no longer held: someone else acted on it first.")
	case err != nil:
		s.log.Error("quarantine action failed", "id", id, "action", action, "user", u.user.Name, "err", err)
		s.fail(w, r, u, http.StatusServiceUnavailable, "That did not work; the message is still held. Try again in a few minutes.")
	default:
		http.Redirect(w, r, "/quarantine/"+url.PathEscape(id)+"?done="+url.QueryEscape("Message "+actionNames[action]+"."), http.StatusSeeOther)
	}
}

func (s *Server) bulk(w http.ResponseWriter, r *http.Request, u *session) {
	action := r.PostForm.Get("action")
	ids := r.PostForm["id"]
	if _, ok := actionNames[action]; !ok || s.o.Holder == nil {
		s.fail(w, r, u, http.StatusBadRequest, "No such action.")
		return
	}
	if len(ids) == 0 {
		http.Redirect(w, r, "/quarantine?done="+url.QueryEscape("Nothing selected."), http.StatusSeeOther)
		return
	}
	if len(ids) > 500 {
		s.fail(w, r, u, http.StatusBadRequest, "At most 500 messages at once.")
		return
	}
	var done, gone, failed int
	for _, id := range ids {
		switch err := s.apply(r, u, id, action); {
		case err == nil:
			done++
		case errors.Is(err, hold.ErrNotHeld), errors.Is(err, store.ErrNotFound):
			gone++
		default:
			failed++
			s.log.Error("quarantine action failed", "id", id, "action", action, "user", u.user.Name, "err", err)
		}
	}
	msg := fmt.Sprintf("%d %s.", done, actionNames[action])
	if gone > 0 {
		msg += fmt.Sprintf(" %d no longer held.", gone)
	}
	if failed > 0 {
		msg += fmt.Sprintf(" %d failed and stay held; try again.", failed)
	}
	http.Redirect(w, r, "/quarantine?done="+url.QueryEscape(msg), http.StatusSeeOther)
}

type policyData struct {
	View  PolicyView
	Rules []store.Rule
	Known []DomainCount
	// Learned are the correspondents learned from traffic, each with
	// whether it has the evidence to be trusted.
	Learned []learned
	// SenderAllows are the per-sender allows (releases as typed).
	SenderAllows []store.SenderAllow
}

type learned struct {
	store.Correspondent
	Trusted bool
}

func (s *Server) policy(w http.ResponseWriter, r *http.Request, u *session) {
	ctx := r.Context()
	var d policyData
	if s.o.Policy != nil {
		d.View = s.o.Policy(ctx)
	}
	var err error
	if d.Rules, err = s.o.Store.ListRules(ctx); err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	cs, err := s.o.Store.Correspondents(ctx, 100)
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	for _, c := range cs {
		d.Learned = append(d.Learned, learned{c, c.Senders >= int64(d.View.LearnMinSenders) && c.Days >= int64(d.View.LearnMinDays)})
	}
	if d.SenderAllows, err = s.o.Store.ListSenderAllows(ctx); err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	d.Known = d.View.Known
	if len(d.Known) > 100 {
		d.Known = d.Known[:100]
	}
	v := s.view(u, "Policy and knowledge", "policy")
	v.Data = d
	s.render(w, r, http.StatusOK, "policy", v)
}

func (s *Server) addRule(w http.ResponseWriter, r *http.Request, u *session) {
	kind := r.PostForm.Get("kind")
	pattern := strings.ToLower(strings.TrimSpace(r.PostForm.Get("pattern")))
	back := localPath(r.PostForm.Get("back"))
	if back == "/" {
		back = "/policy"
	}
	if kind != "allow" && kind != "deny" {
		s.fail(w, r, u, http.StatusBadRequest, "A rule is allow or deny.")
		return
	}
	pattern, err := policy.NormalizePattern(pattern)
	if err != nil {
		s.fail(w, r, u, http.StatusBadRequest, "Not an address, domain or .suffix: "+clip(err.Error())+".")
		return
	}
	note := clip(strings.TrimSpace(r.PostForm.Get("note")))
	detail := kind + " " + pattern
	if intended, ok := s.coversLookalike(kind, pattern); ok {
		if confirm := strings.ToLower(strings.TrimSpace(r.PostForm.Get("confirm"))); confirm != pattern {
			s.log.Info("allow rule for a protected lookalike not confirmed", "pattern", pattern, "intended", intended, "user", u.user.Name)
			v := s.view(u, "Confirm: allow a lookalike of "+intended, "policy")
			v.Data = confirmAllowData{Pattern: pattern, Intended: intended, Note: note, Back: back, Mismatch: confirm != ""}
			s.render(w, r, http.StatusConflict, "allow", v)
			return
		}
		detail += " (confirmed: a lookalike of " + intended + ")"
	}
	rule := &store.Rule{Kind: kind, Pattern: pattern, Note: note, CreatedBy: u.user.Name}
	err = s.o.Store.AddRule(r.Context(), rule)
	msg := fmt.Sprintf("Added: %s %s.", kind, pattern)
	switch {
	case errors.Is(err, store.ErrExists):
		msg = fmt.Sprintf("Already there: %s %s.", kind, pattern)
	case err != nil:
		s.storeFailed(w, r, u, err)
		return
	default:
		s.event(r.Context(), store.Event{Kind: "rule-added", Actor: "admin:" + u.user.Name, Detail: detail})
		s.log.Info("policy rule added", "rule", detail, "user", u.user.Name)
		if s.o.RulesChanged != nil {
			s.o.RulesChanged()
		}
	}
	http.Redirect(w, r, addQuery(back, "done", msg), http.StatusSeeOther)
}

// confirmAllowData is the confirmation page for an allow rule that covers
// a lookalike of a protected domain.
type confirmAllowData struct {
	Pattern, Intended, Note, Back string
	// Mismatch: something was typed, and it was not the pattern.
	Mismatch bool
}

// coversLookalike reports whether an allow rule for pattern (normalised: an
// address, a domain or a .suffix) lets mail reach a lookalike of a
// protected domain, and names the domain imitated.
func (s *Server) coversLookalike(kind, pattern string) (string, bool) {
	if kind != "allow" || s.o.Lookalike == nil {
		return "", false
	}
	if i := strings.LastIndexByte(pattern, '@'); i >= 0 {
		return s.o.Lookalike(pattern[i+1:], false)
	}
	if suffix, ok := strings.CutPrefix(pattern, "."); ok {
		return s.o.Lookalike(suffix, true)
	}
	return s.o.Lookalike(pattern, false)
}

func addQuery(path, k, v string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + k + "=" + url.QueryEscape(v)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, u *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, r, u, http.StatusNotFound, "No such rule.")
		return
	}
	rules, err := s.o.Store.ListRules(r.Context())
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	var what string
	for _, rule := range rules {
		if rule.ID == id {
			what = rule.Kind + " " + rule.Pattern
		}
	}
	switch err := s.o.Store.DeleteRule(r.Context(), id); {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, u, http.StatusNotFound, "No such rule.")
		return
	case err != nil:
		s.storeFailed(w, r, u, err)
		return
	}
	s.event(r.Context(), store.Event{Kind: "rule-deleted", Actor: "admin:" + u.user.Name, Detail: what})
	s.log.Info("policy rule deleted", "rule", what, "user", u.user.Name)
	if s.o.RulesChanged != nil {
		s.o.RulesChanged()
	}
	http.Redirect(w, r, "/policy?done="+url.QueryEscape("Deleted: "+what+"."), http.StatusSeeOther)
}

func (s *Server) deleteSenderAllow(w http.ResponseWriter, r *http.Request, u *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, r, u, http.StatusNotFound, "No such allow.")
		return
	}
	allows, err := s.o.Store.ListSenderAllows(r.Context())
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	var what string
	for _, a := range allows {
		if a.ID == id {
			what = a.Sender + " → " + a.Recipient
		}
	}
	switch err := s.o.Store.DeleteSenderAllow(r.Context(), id); {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, u, http.StatusNotFound, "No such allow.")
		return
	case err != nil:
		s.storeFailed(w, r, u, err)
		return
	}
	s.event(r.Context(), store.Event{Kind: "sender-allow-deleted", Actor: "admin:" + u.user.Name, Detail: what})
	s.log.Info("per-sender allow deleted", "allow", what, "user", u.user.Name)
	if s.o.RulesChanged != nil {
		s.o.RulesChanged()
	}
	http.Redirect(w, r, "/policy?done="+url.QueryEscape("Deleted: "+what+"."), http.StatusSeeOther)
}

func (s *Server) reports(w http.ResponseWriter, r *http.Request, u *session) {
	rs, err := s.o.Store.ListReports(r.Context(), "", 200)
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	v := s.view(u, "Reports", "reports")
	v.Data = rs
	s.render(w, r, http.StatusOK, "reports", v)
}

type reportData struct {
	R     *store.Report
	Audit *audit.Report
	Scan  []scan.Result
	Live  []scan.Result // the registered ones
	Err   string
}

func (s *Server) getReport(w http.ResponseWriter, r *http.Request, u *session) *store.Report {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, r, u, http.StatusNotFound, "No such report.")
		return nil
	}
	rep, err := s.o.Store.GetReport(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, u, http.StatusNotFound, "No such report.")
		return nil
	}
	if err != nil {
		s.storeFailed(w, r, u, err)
		return nil
	}
	return rep
}

func (s *Server) report(w http.ResponseWriter, r *http.Request, u *session) {
	rep := s.getReport(w, r, u)
	if rep == nil {
		return
	}
	d := reportData{R: rep}
	switch rep.Kind {
	case "audit":
		var a audit.Report
		if err := json.Unmarshal(rep.JSON, &a); err != nil {
			d.Err = "The saved result cannot be read: " + err.Error()
		} else {
			d.Audit = &a
		}
	case "scan":
		if err := json.Unmarshal(rep.JSON, &d.Scan); err != nil {
			d.Err = "The saved result cannot be read: " + err.Error()
		}
		for _, res := range d.Scan {
			if res.Status == scan.Registered {
				d.Live = append(d.Live, res)
			}
		}
	}
	v := s.view(u, rep.Title, "reports")
	v.Data = d
	s.render(w, r, http.StatusOK, "report", v)
}

// reportHTML serves a saved HTML report, to view (sandboxed: it runs no
// script and cannot reach the dashboard) or, with ?download=1, to save.
func (s *Server) reportHTML(w http.ResponseWriter, r *http.Request, u *session) {
	rep := s.getReport(w, r, u)
	if rep == nil {
		return
	}
	if len(rep.HTML) == 0 {
		s.fail(w, r, u, http.StatusNotFound, "This report has no HTML version.")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	h.Set("Content-Type", "text/html; charset=utf-8")
	if r.URL.Query().Get("download") != "" {
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="stray-%s-%d.html"`, rep.Kind, rep.ID))
	}
	w.Write(rep.HTML)
}

type eventsData struct {
	Events []store.Event
	Kind   string
	Kinds  []string
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, u *session) {
	kind := r.URL.Query().Get("kind")
	evs, err := s.o.Store.Events(r.Context(), store.EventFilter{Kind: kind, Limit: 300})
	if err != nil {
		s.storeFailed(w, r, u, err)
		return
	}
	v := s.view(u, "Event log", "events")
	v.Data = eventsData{Events: evs, Kind: kind, Kinds: []string{"", "login", "login-failed", "logout", "csrf-refused", "decision", "held",
		"notified", "releasing", "released", "released-fixed", "discarded", "expired", "release-failed", "rule-added", "rule-deleted", "sender-allow-deleted", "sink"}}
	s.render(w, r, http.StatusOK, "events", v)
}
