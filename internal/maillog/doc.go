// Package maillog reads mail server logs as a stream of deliveries: one
// Delivery per recipient per delivery attempt (sent, bounced, deferred…),
// joined with what the log said earlier about the same message (the client
// that submitted it, the envelope sender, size and Message-ID).
//
// It reads Postfix logs (syslog and maillog_file, with or without a year,
// RFC 3339 timestamps) and Exim main logs, plain or compressed (gzip, zstd,
// bzip2), from files or standard input; several files are read in the order
// they were rotated, so a message that spans a rotation is still joined.
// Lines are parsed in parallel and joined in log order. Other formats are
// added by implementing Format.
//
// What it decides: what a log line says, which lines belong together, and
// which recipients were delivered (Status Sent: not bounced, deferred,
// discarded or merely verified).
//
// What it must never do: decide whether a recipient is a mistake (that is
// package detect), keep more than a bounded amount of state (only messages
// still open in the log, evicted after Options.OpenTimeout of log time or
// beyond Options.MaxOpen), or stop on a bad line: a malformed line is
// counted, sampled with its line number, and skipped.
package maillog
