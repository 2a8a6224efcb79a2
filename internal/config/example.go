package config

// Example is a complete, annotated configuration: every key with its
// default or a typical value. docs/config.md is generated from it, and a test
// checks that it decodes strictly and validates.
const Example = `# stray configuration (YAML). Unknown keys are errors; relative paths are
# relative to this file. Validate with: stray config check FILE

detect:
  # Your own domains or whole suffixes. Everything under them is yours; a
  # lookalike outside them is a leak (verdict block).
  protect: [example.com]
  # Files of domains you write to, one "DOMAIN [COUNT]" a line (# comments),
  # e.g. from "stray learn". A first-time domain one slip from one of them is
  # held; a known domain is never flagged.
  known: []
  # Files of registered lookalikes that accept mail, blocked outright:
  # "DOMAIN [INTENDED]" lines, as "stray scan --emit-deny FILE" writes them.
  deny: []
  # The built-in list of popular mail providers and their legitimate
  # near-neighbours.
  builtin: true
  # Domains delivered to are learned as correspondents, but trusted only on
  # evidence: mail from this many distinct senders on this many distinct
  # days. Recipients let through by an allow rule or a release teach
  # nothing, and a lookalike of a protected domain is never trusted.
  learn:
    min_senders: 3
    min_days: 2

policy:
  # enforce, or audit: decide and log, enforce nothing (a safe rollout).
  mode: enforce
  # Action per verdict: reject, tempfail, hold, warn, log or pass.
  actions:
    block: reject
    hold: hold
    warn: warn
  # Recipients never flagged: addresses (j@partner.ml), domains (partner.ml,
  # exactly) or suffixes (.partner.ml: it and everything under it).
  allow: []
  # Recipients always blocked, in the same forms (.ml: all of Mali). Allow
  # wins over deny.
  deny: []
  # Refinements for some senders; the first that matches applies. A scope
  # matches the authenticated (SASL) login when the MTA passes one: senders
  # match a login that is an address, logins match any login exactly.
  scopes:
    - senders: [.hr.example.com]
      logins: []
      actions: {hold: reject}
      allow: []
      deny: []
  # Let scopes match the envelope sender (MAIL FROM) of clients that did not
  # authenticate, when the MTA says so. Anyone can write an envelope sender:
  # turn this on only when every client that can submit is trusted.
  trust_envelope: false
  # Recipients at an address literal (j@[192.0.2.1]), whose destination
  # stray cannot judge: reject, hold, tempfail, warn, log or pass.
  address_literals: reject

listen:
  # Milter for Postfix (smtpd_milters) and Sendmail: inet:HOST:PORT as
  # Postfix writes it, inet:PORT@HOST as Sendmail writes it (inet:PORT:
  # every address), inet6: the same over IPv6 only, unix:PATH (or
  # local:PATH), or a bare HOST:PORT. Empty: off.
  milter: inet:127.0.0.1:8895
  # The other listeners are HOST:PORT: an empty HOST is every address, an
  # IPv6 one is bracketed ([::1]:10045), a PORT is a number (1-65535).
  # Postfix policy delegation (check_policy_service): HOST:PORT. Empty: off.
  policy: 127.0.0.1:10045
  # HTTP: the dashboard (/), the check API (/api/v1/), the senders' hold
  # links (/h/), /healthz, and /metrics (Prometheus) unless listen.metrics
  # is set. Empty: off.
  http: 127.0.0.1:8098
  # Serve listen.http over TLS (PEM certificate chain and key, re-read when
  # they change; HSTS on). Without it, put a TLS reverse proxy in front.
  http_tls:
    cert: ""
    key: ""
  # Prometheus /metrics (and /healthz) on an address of its own, e.g.
  # 127.0.0.1:9098: then listen.http, which senders reach for their hold
  # links, no longer shows /metrics. Empty: /metrics is on listen.http;
  # keep that listener away from the public, or set this.
  metrics: ""
  # SMTP listener for senders' replies to hold notifications (with
  # hold.reply_domain). Empty: off.
  reply: ""
  # SMTP relay front end: a smart host for Exchange, Microsoft 365, Google
  # Workspace, Exim or OpenSMTPD, in front of relay.next_hop. Empty: off.
  relay: ""
  # SMTP sink for your own defensive registrations (sink.domains): refuses
  # every recipient with the address meant. Empty: off.
  sink: ""
  # Open connections per listener. 0: sized from the file-descriptor limit
  # (at most 512 milter, 256 policy, 256 http, 256 relay sessions of two
  # descriptors each, 256 sink, together the limit less 64).
  # At the cap a new connection replaces the idle one that has gone longest
  # without completing anything, or is closed at once, and the MTA applies
  # its default action (tempfail) and retries.
  max_connections:
    milter: 0
    policy: 0
    http: 0
    relay: 0
    sink: 0

relay:
  # The MTA that queues and delivers what the relay passes (HOST:PORT):
  # your Postfix, the Exchange connector's target, the provider's relay.
  next_hop: ""
  # Client ranges (CIDR) that may relay; anyone else hears 554 at connect
  # (with allow_certs: 550 5.7.1 at MAIL, unless its certificate is allowed).
  # allow, allow_certs and client_ca are re-read on SIGHUP, for new sessions.
  allow: [127.0.0.0/8, "::1/128"]
  # Client certificates that may relay from outside allow, after STARTTLS:
  # a DNS name the certificate carries (*.example.com: one label under
  # it, or that literal wildcard name), verified against client_ca or the
  # system roots, or sha256:HEX, a pinned certificate's public key (as
  # next_hop_fingerprint).
  # Microsoft 365: ["*.mail.protection.outlook.com"].
  allow_certs: []
  # CA certificates (PEM) for allow_certs names (re-read on SIGHUP); empty:
  # the system roots.
  client_ca: ""
  # STARTTLS certificate and key (re-read on SIGHUP and when the files
  # change; broken files keep the running one); require_tls refuses MAIL
  # before STARTTLS.
  tls_cert: ""
  tls_key: ""
  require_tls: false
  # STARTTLS to the next hop: none, opportunistic (encrypted when offered,
  # not authenticated) or required (certificate verified).
  next_hop_tls: opportunistic
  # Pin the next hop's key instead of trusting a CA: sha256:HEX of its
  # certificate's SubjectPublicKeyInfo (STARTTLS then required). Empty: no pin.
  next_hop_fingerprint: ""
  # The name given in EHLO to the next hop. Empty: the host name.
  next_hop_helo: ""
  # SIZE limit in bytes.
  max_message_size: 52428800
  # Offer DSN and pass RET, ENVID, NOTIFY and ORCPT to the next hop (an
  # internationalised recipient's ORCPT as RFC 6533's utf-8 type).
  dsn: true

sink:
  # "DOMAIN INTENDED" lines (stray scan --emit-deny): lookalikes you
  # registered yourself, whose mail the sink refuses.
  domains: ""

# Held messages, the event log and learned correspondents: sqlite:PATH
# (embedded, one node; a bare path ending in .db, .sqlite or .sqlite3 is
# read the same way) or postgres://user@host/db (several nodes share it).
store: sqlite:stray.db

hold:
  # Hold likely typos in the store and ask the sender; off: a hold puts the
  # message in the MTA's hold queue instead.
  enabled: true
  # Key signing links and release headers, created (0600) when missing;
  # every node of one store needs the same file.
  secret_file: stray.key
  # Where the links in notifications point: the http listener as senders
  # reach it. Unset: http://LISTEN.HTTP (this host's name for 0.0.0.0);
  # stray config check warns when it and listen.http disagree (loopback
  # links from a listener others reach, or the other way round).
  base_url: http://127.0.0.1:8098
  # How long a held message waits, and what happens then (discard or
  # release); the sender is told either way.
  expire: 72h
  on_expiry: discard
  # Submission server for notifications, and their sender.
  notify_smtp: 127.0.0.1:25
  notify_from: stray@localhost
  # Where released messages are delivered: your MTA, which passes them
  # through stray again and lets the released recipients through.
  reinject_smtp: 127.0.0.1:25
  # When the store cannot take a message: tempfail (the MTA retries) or
  # quarantine (the MTA's hold queue).
  on_store_error: tempfail
  # Larger messages are quarantined in the MTA instead (bytes).
  max_size: 67108864
  # This node's name in the event log (default: the host name).
  node: ""
  # How often expired holds, releases a dead node left unfinished and
  # notifications that failed are handled.
  sweep: 1m
  # A release unfinished this long (its node died while re-injecting) is
  # retried by the sweep, to the addresses its sender chose.
  release_stale: 10m
  # For this long after a message was held, an identical delivery is the
  # MTA retrying it (dropped if the message was already answered); later
  # it is a new message and is held again.
  retry_window: 15m
  # The warn action delivers and tells the sender afterwards (at most once
  # per recipient domain a day). warn_header also adds X-Stray-Warning to
  # the message, which every recipient reads: only for internal ones.
  warn_header: false
  # Let senders answer by replying (SEND, FIX or CANCEL): notifications get
  # a signed Reply-To at this domain; route it to listen.reply in your MTA
  # (Postfix: transport_maps "reply.example.org smtp:[127.0.0.1]:10026").
  reply_domain: ""
  # The only clients listen.reply accepts replies from: your MTA's addresses
  # or prefixes (others are refused at connect with 554 5.7.1). Empty: this
  # machine only (127.0.0.0/8 and ::1). Never reachable from outside: see
  # docs/hold.md.
  reply_clients: []
  # Accept a reply only when your MTA authenticated its sender as the login
  # that sent the held message (or, if that message shows none, as its
  # sender address). Needs Postfix's smtpd_sasl_authenticated_header = yes.
  reply_require_auth: false

web:
  # The dashboard at / on listen.http (needs the store). Users are created
  # with "stray user add NAME --role admin|auditor".
  dashboard: true
  # How long a login lasts.
  session_ttl: 12h
  # A reverse proxy that authenticates users (SSO) may pass the user name
  # in this header; it is believed only from trusted_proxies, and the user
  # must exist in stray. Empty: off.
  proxy_header: ""
  # Addresses or prefixes of the reverse proxies in front of listen.http.
  # From them, X-Forwarded-For names the client (the right-most address
  # that is not a trusted proxy) for rate limits and the event log; from
  # anyone else it is ignored.
  trusted_proxies: []
  # The HTTP check API at /api/v1/ (tokens: "stray token add NAME").
  api: true
  # Requests per second per API token (bursts of twice that).
  api_rate: 20
  # Origins of web-mail pages allowed to call the API from a browser.
  cors_origins: []

log:
  # debug (also every clean recipient), info, warn or error.
  level: info
  # text or json, on standard error.
  format: text

# On SIGTERM: how long messages in progress may take before connections
# are closed (the MTA then tempfails them).
shutdown_timeout: 30s
`
