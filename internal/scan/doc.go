// Package scan finds which lookalikes of an organisation's domains exist in
// DNS and would receive its mistyped mail: it resolves the candidates of
// package permute concurrently (NS, A, AAAA, MX, the addresses of MX hosts),
// tells registered names from wildcard answers, decides whether each
// accepts mail, optionally asks its mail server whether it takes a random
// recipient (never sending a message), and compares a scan with the last
// one (State, Diff) so that a weekly run reports what is new, gone or
// changed.
//
// What it decides: registered, wildcard, unregistered or unknown, and
// whether mail would be delivered. A failed lookup (SERVFAIL, REFUSED, a
// timeout) is unknown, never registered and never gone.
//
// What it must never do: pick its own DNS server or address (the Resolver
// is injected; tests use scantest's loopback server), send DATA to a mail
// server, probe SMTP unless asked, or decide what a gate blocks; it only
// writes the list (WriteDeny) that knowledge for detect is made from.
package scan
