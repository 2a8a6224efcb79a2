package hold

import (
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/store"
)

// NewRequest is the request to hold a message: the gate's held recipients
// become the stored recipients (verdict, intended domain, suggestion,
// score and each reason as "kind: sentence"), so that a front end never
// builds store rows.
func NewRequest(queueID, sender string, raw []byte, held []gate.RcptResult) Request {
	req := Request{QueueID: queueID, Sender: sender, Raw: raw, Held: make([]store.Recipient, 0, len(held))}
	for _, r := range held {
		f := r.Decision.Finding
		rec := store.Recipient{Address: r.Recipient, Verdict: f.Verdict.String(), Intended: f.Intended, Suggestion: f.Suggestion, Score: f.Score}
		for _, x := range f.Reasons {
			rec.Reasons = append(rec.Reasons, x.Kind+": "+x.Message)
		}
		req.Held = append(req.Held, rec)
	}
	return req
}
