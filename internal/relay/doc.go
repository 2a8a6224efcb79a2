// Package relay is stray's SMTP relay front end: an in-line, before-queue
// proxy (in the style of Postfix's smtpd_proxy_filter) for MTAs that speak
// neither milter nor policy delegation (Exchange, Microsoft 365, Google
// Workspace, Exim, OpenSMTPD). For each client session it opens a session
// to the next hop, asks a gate.Session about every recipient, passes only
// the recipients that may leave to the next hop, and answers the client
// only with what the next hop (and, for held recipients, the store)
// answered. It keeps no queue: when it or the next hop is down, the client
// hears 4xx and keeps the message.
//
// The server side is go-smtp's (its replies batched until the next read,
// batchconn.go); the next-hop side is the relay's own client (nexthop.go),
// which pipelines MAIL with the first RCPT, sends the content in BDAT
// chunks when it can, starts TLS on the connection it has, checks a pinned
// key, and keeps sessions for reuse.
//
// It decides nothing itself: refusals, holds and warnings come from the
// gate. It never relays for clients outside its allowed ranges, unless
// they present a client certificate that meets the configured rules
// (clientcert). It never changes what a client sends but for one
// parameter: with DSN, an ORCPT whose rfc822 xtext holds a UTF-8 address
// is given its RFC 6533 utf-8 form for the same address (smtpConn, which
// therefore also does STARTTLS, and says why a malformed ENVID is
// refused); message content is never touched.
package relay
