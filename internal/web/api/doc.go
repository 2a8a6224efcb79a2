// Package api is stray's HTTP check API for mail clients and web-mail
// compose forms: POST /api/v1/check takes a batch of recipients (and
// optionally the sender) and answers, per recipient, the same Finding as
// `stray check --format json`, with what the policy would do at send time
// and a sentence to show. It also serves its OpenAPI description, a small
// dependency-free JavaScript snippet that puts "did you mean …?" under a
// compose form's To and Cc fields, and a demo page using it.
//
// It authenticates bearer tokens ("stray_<id>_<secret>", see NewToken)
// against a TokenStore, rate limits per token and, for failed
// authentications, per client address, and answers browsers on configured
// origins only (CORS).
//
// It translates; it never decides: the gate does, through gate.Gate.Check,
// the same decision as for the MTA front ends, with nothing recorded. It never logs recipients, tokens or secrets, and it
// never enforces anything — a compose form may ignore its answer, the MTA
// front ends will not. See docs/api.md.
package api
