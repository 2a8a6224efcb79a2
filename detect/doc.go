// Package detect decides, per recipient address, whether its domain is a
// likely typo of a domain the sender meant — the organisation's own
// (protected) domains, the domains it writes to (known correspondents), or a
// popular mail provider — and suggests the intended address.
//
//	c, _ := detect.New(detect.Knowledge{Protected: []string{"mil"}})
//	f, _ := c.Check("j.smith@army.ml")
//	// f.Verdict == detect.Block, f.Suggestion == "j.smith@army.mil"
//
// A Checker is built once from Knowledge and is then immutable and safe for
// concurrent use; a check costs microseconds whatever the size of the
// knowledge (a symmetric-delete index finds the candidates). The package is
// pure: it never resolves DNS, reads files (ReadKnown reads what it is
// given) or keeps state between checks, and it never enforces anything —
// what to do with a verdict is the policy's business. See docs/detection.md.
package detect
