// Package record keeps what the gate saw, for every front end (milter,
// policy server, relay, HTTP check): the correspondents learned from clean
// delivered mail, a per-sender allow for a recipient released as typed,
// one event per flagged decision, and the per-day decision counts of the
// dashboard. It needs a store, not hold and confirm.
//
// It decides nothing (the gate hands it decisions already made) and never
// blocks mail: it queues and writes in the background, and drops, counting,
// what the store cannot keep up with.
package record
