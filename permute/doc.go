// Package permute generates the lookalikes of a domain: the domains a person
// lands on by mistyping it (army.ml, armym.il, armymil.com for army.mil;
// gmial.com, gmail.cm, gmailc.om for gmail.com) and the domains made to be
// mistaken for it (gmаil.com with a Cyrillic а).
//
//	cands, _ := permute.Generate("army.mil", permute.Options{})
//	// cands[i].Domain "army.ml", Kind "tld-swap", Likelihood 0.9 …
//
// It edits the whole domain string, dots and TLD included, and keeps only
// results that could be registered: their TLD exists (the ICANN section of
// the Public Suffix List, which holds every IANA TLD) and they lie below a
// public suffix. Every candidate carries the kind of slip that makes it and a
// likelihood in (0,1] from the same typo model as package detect
// (detect.Slip); see docs/scan.md for the kinds and how each is scored.
// Homoglyphs use only characters the TLD's registry accepts (as far as
// stray knows its policy) and the UTS #39 confusables table.
//
// What it decides: which strings are plausible lookalikes, and how likely a
// person is to type (or mistake) each one. Generation is pure and
// deterministic: the same domain always gives the same candidates, each
// domain once, in the same order (likelihood, then domain).
//
// What it must never do: resolve DNS or touch the network, read files, keep
// state between calls, or decide what is registered or dangerous. That is
// package scan's job (internal/scan), and blocking is detect's.
package permute
