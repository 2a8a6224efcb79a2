# stray — make targets. `make test` is what CI runs.
GO ?= go
PKGS := ./...
# A pipeline fails when any of its commands fails (make eval filters the
# test's output through grep: its status must be the test's).
SHELL := bash
.SHELLFLAGS := -o pipefail -c

.PHONY: all build release deb test lint bench fuzz eval eval-peers speed audit-speed generate perf

all: build

# Build stamps (stray version): the version from git describe, the commit and
# the build date (SOURCE_DATE_EPOCH when set, for reproducible builds).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u $${SOURCE_DATE_EPOCH:+-d @$$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
STAMP := -X github.com/stray-mail/stray/internal/cli.Version=$(VERSION) \
	-X github.com/stray-mail/stray/internal/cli.Commit=$(COMMIT) \
	-X github.com/stray-mail/stray/internal/cli.BuildDate=$(BUILD_DATE)

build:
	$(GO) build -trimpath -ldflags '$(STAMP)' -o stray ./cmd/stray

# Static release binaries for Linux into $(DIST): stray-VERSION-linux-ARCH.
DIST ?= dist
RELEASE_ARCHS ?= amd64 arm64
release:
	mkdir -p $(DIST)
	for arch in $(RELEASE_ARCHS); do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(STAMP)' \
	    -o $(DIST)/stray-$(VERSION)-linux-$$arch ./cmd/stray || exit 1; \
	done

# The Debian package (dist/stray_DEB_VERSION_ARCH.deb), built by nfpm from
# packaging/nfpm.yaml: no Docker, no dpkg-buildpackage. The Debian version is
# VERSION without its leading v (v1.2.0-3-gabc → 1.2.0+3.gabc), or
# 0.0.0~git<commit> when there is no tag.
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEB_ARCH ?= $(shell $(GO) env GOARCH)
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -e '/^v\{0,1\}[0-9][0-9]*\./{s/^v//;s/-/+/;s/-/./g;b' -e '}' -e 's/-/./g;s/^/0.0.0~git/')
.PHONY: nfpm-version
nfpm-version:
	$(NFPM) --version

deb:
	mkdir -p $(DIST)/deb-$(DEB_ARCH)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DEB_ARCH) $(GO) build -trimpath -ldflags '-s -w $(STAMP)' \
	  -o $(DIST)/deb-$(DEB_ARCH)/stray ./cmd/stray
	STRAY_DEB_BINARY=$(DIST)/deb-$(DEB_ARCH)/stray STRAY_DEB_ARCH=$(DEB_ARCH) STRAY_DEB_VERSION='$(DEB_VERSION)' \
	  $(NFPM) pkg --config packaging/nfpm.yaml --packager deb \
	  --target $(DIST)/stray_$(DEB_VERSION)_$(DEB_ARCH).deb

# The test command (README, CI): formatting, vet, and every test with the race detector.
test:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

lint:
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Short fuzz runs of every fuzz target (FUZZTIME each).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/address
	$(GO) test -run '^$$' -fuzz '^FuzzParseRoute$$' -fuzztime $(FUZZTIME) ./internal/address
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./detect
	$(GO) test -run '^$$' -fuzz '^FuzzReadKnown$$' -fuzztime $(FUZZTIME) ./detect
	$(GO) test -run '^$$' -fuzz '^FuzzConfig$$' -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzMilter$$' -fuzztime $(FUZZTIME) ./internal/listenaddr
	$(GO) test -run '^$$' -fuzz '^FuzzTCP$$' -fuzztime $(FUZZTIME) ./internal/listenaddr
	$(GO) test -run '^$$' -fuzz '^FuzzListenAddressesMeanTheSameToConfigAndDaemon$$' -fuzztime $(FUZZTIME) ./internal/daemon
	$(GO) test -run '^$$' -fuzz '^FuzzReadPacket$$' -fuzztime $(FUZZTIME) ./internal/milter
	$(GO) test -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME) ./internal/milter
	$(GO) test -run '^$$' -fuzz '^FuzzReadLargePacket$$' -fuzztime $(FUZZTIME) ./internal/milter
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(FUZZTIME) ./internal/policyd
	$(GO) test -run '^$$' -fuzz '^FuzzGenerate$$' -fuzztime $(FUZZTIME) ./permute
	$(GO) test -run '^$$' -fuzz '^FuzzReadState$$' -fuzztime $(FUZZTIME) ./internal/scan
	$(GO) test -run '^$$' -fuzz '^FuzzPostfixParse$$' -fuzztime $(FUZZTIME) ./internal/maillog
	$(GO) test -run '^$$' -fuzz '^FuzzRewriteRecipients$$' -fuzztime $(FUZZTIME) ./internal/hold
	$(GO) test -run '^$$' -fuzz '^FuzzEximParse$$' -fuzztime $(FUZZTIME) ./internal/maillog
	$(GO) test -run '^$$' -fuzz '^FuzzExchangeParse$$' -fuzztime $(FUZZTIME) ./internal/maillog
	$(GO) test -run '^$$' -fuzz '^FuzzCheckRequest$$' -fuzztime $(FUZZTIME) ./internal/web/api
	$(GO) test -run '^$$' -fuzz '^FuzzReply$$' -fuzztime $(FUZZTIME) ./internal/hold
	$(GO) test -run '^$$' -fuzz '^FuzzCheckPassword$$' -fuzztime $(FUZZTIME) ./internal/web
	$(GO) test -run '^$$' -fuzz '^FuzzHeaders$$' -fuzztime $(FUZZTIME) ./internal/web
	$(GO) test -run '^$$' -fuzz '^FuzzParseStamp$$' -fuzztime $(FUZZTIME) ./internal/maillog
	$(GO) test -run '^$$' -fuzz '^FuzzReadReply$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzDotWriter$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzParseFingerprint$$' -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzForwarded$$' -fuzztime $(FUZZTIME) ./internal/realip
	$(GO) test -run '^$$' -fuzz '^FuzzRedactDSN$$' -fuzztime $(FUZZTIME) ./internal/store
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./internal/maillog
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) ./internal/audit
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyReleaseHeader$$' -fuzztime $(FUZZTIME) ./internal/hold
	$(GO) test -run '^$$' -fuzz '^FuzzParseDSN$$' -fuzztime $(FUZZTIME) ./internal/store
	$(GO) test -run '^$$' -fuzz '^FuzzStoreSettingMeansTheSameToConfigAndOpener$$' -fuzztime $(FUZZTIME) ./internal/store
	$(GO) test -run '^$$' -fuzz '^FuzzDecompress$$' -fuzztime $(FUZZTIME) ./internal/store
	$(GO) test -run '^$$' -fuzz '^FuzzParseValues$$' -fuzztime $(FUZZTIME) ./internal/postconf
	$(GO) test -run '^$$' -fuzz '^FuzzSources$$' -fuzztime $(FUZZTIME) ./internal/postconf
	$(GO) test -run '^$$' -fuzz '^FuzzReadHead$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzFixORCPT$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzSMTPConnStream$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzSMTPConnDataEnd$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzENVIDProblemRefusesOnlyWhatGoSMTPRefuses$$' -fuzztime $(FUZZTIME) ./internal/relay
	$(GO) test -run '^$$' -fuzz '^FuzzRules$$' -fuzztime $(FUZZTIME) ./internal/relay/clientcert

# Recall / fix / false-positive rate per scenario on the development corpus,
# and per class of slip on the synthetic class-balanced set (synth.jsonl);
# fails below the targets.
eval:
	$(GO) test -count=1 -run '^(TestEvalMeetsTargets|TestSynthMeetsTargets)$$' -v ./detect | grep -v '^    eval_test.go:[0-9]*:   [ABCD] \(miss\|false\)\|^    synth_test.go:[0-9]*:   '

# stray side by side with the npm peers on the same corpus (needs npm).
eval-peers:
	scripts/eval-peers.sh

# Whole-process speed against mailcheck, and 1.5k vs 120k known domains.
speed:
	scripts/speed-peers.sh

# Whole-process speed of stray audit against grep -c status=sent (300 MB synthetic Postfix log).
audit-speed:
	scripts/audit-vs-grep.sh

generate:
	$(GO) generate ./...

# Measurements against a real Postfix (minutes; needs postfix and root):
# throughput with and without the milter, and a 100k-message milter soak.
# STRAY_PERF_CMILTER=1 adds a C libmilter no-op for reference (gcc,
# libmilter-dev); STRAY_PERF_KEEP_SESSIONS=1 sends many messages per session.
perf:
	STRAY_PERF_MESSAGES=3000 STRAY_PERF_UNIX=1 $(GO) test -count=1 -run '^TestPerfPostfixThroughput' -v -timeout 30m ./e2e
	STRAY_SOAK=100000 STRAY_SOAK_RATE=500 $(GO) test -count=1 -run '^TestPerfMilterSoak' -v -timeout 30m ./e2e

# The milter's per-message cost against a C libmilter no-op (issue #12),
# built twice (skipping the content, and with stray's hold-on
# conversation): over TCP, then over a unix socket, each in alternating
# rounds with bare Postfix and the policy server, then the latency of one
# session at a time (gcc and libmilter-dev). With MILTER_PERF_BASE=REV the
# milter built from that git revision runs in the same rounds too: an A/B
# on one machine in one run. MILTER_PERF_ROUNDS and MILTER_PERF_MESSAGES
# (messages per run) size the throughput runs.
MILTER_PERF_BASE ?=
MILTER_PERF_ROUNDS ?= 7
MILTER_PERF_MESSAGES ?= 3000
.PHONY: perf-milter
perf-milter:
	@set -e; base=$$(GO=$(GO) scripts/build-rev.sh "$(MILTER_PERF_BASE)"); \
	export STRAY_PERF_MILTER_BASE=$$base STRAY_PERF_CMILTER=hold STRAY_PERF_MESSAGES=$(MILTER_PERF_MESSAGES) STRAY_PERF_ROUNDS=$(MILTER_PERF_ROUNDS) STRAY_PERF_MILTER_LAT=300; \
	$(GO) test -count=1 -run '^TestPerf(PostfixThroughput|MilterLatency)' -v -timeout 60m ./e2e; \
	STRAY_PERF_UNIX=1 $(GO) test -count=1 -run '^TestPerf(PostfixThroughput|MilterLatency)' -v -timeout 60m ./e2e

# The SMTP relay (issue #13): a real Postfix as next hop (the main figure),
# then smtp-sink (C, answers at once: the relay's own cost shows whole).
# Each run alternates, in rotating order, smtp-source straight to the next
# hop and through stray relay (and, with RELAY_PERF_BASE=REV, through the
# relay built from that git revision: an A/B in the same run), and, for
# scale, through Postfix's own before-queue proxy (smtpd_proxy_filter) in
# front of the same next hop; it reports
# medians, ratios, the relay's CPU per message, and latency p50/p90/p99 per
# session idle, paced and at full load. Then the SIGKILL test (no loss).
# Re-run on a quiet machine: make relay-perf RELAY_PERF_BASE=0340ff0
RELAY_PERF_ROUNDS ?= 5
RELAY_PERF_BASE ?=
.PHONY: relay-perf
relay-perf:
	@set -e; base=$$(GO=$(GO) scripts/build-rev.sh "$(RELAY_PERF_BASE)"); \
	export STRAY_PERF_RELAY_BASE=$$base STRAY_PERF_RELAY_ROUNDS=$(RELAY_PERF_ROUNDS) STRAY_PERF_RELAY_PEER=1; \
	STRAY_PERF_RELAY_NEXT=postfix STRAY_PERF_RELAY=2000 $(GO) test -count=1 -timeout 30m -run '^TestPerfRelayThroughputAndLatency$$' -v ./e2e; \
	STRAY_PERF_RELAY=3000 $(GO) test -count=1 -timeout 30m -run '^TestPerfRelayThroughputAndLatency$$' -v ./e2e
	STRAY_RELAY_CRASHES=40 $(GO) test -count=1 -run '^TestPerfRelayCrashAtRandomMoments$$' -v ./e2e

# The relay's DSN connection layer (smtpConn): relay.dsn on against off,
# alternating rounds, 2 KB and 1 MB messages through smtp-sink.
.PHONY: relay-dsn-perf
relay-dsn-perf:
	STRAY_PERF_RELAY_DSN=2000 STRAY_PERF_ROUNDS=7 $(GO) test -count=1 -run '^TestPerfRelayDSNConnOverhead$$' -v ./e2e

# Latency of the HTTP check API over loopback: 10-recipient batches from one
# keep-alive client, p50/p99/p99.9 (the target is p99 ≤ 5 ms).
.PHONY: api-latency
api-latency:
	STRAY_API_REQUESTS=20000 $(GO) test -count=1 -run '^TestCheckLatencyOverLoopback$$' -v ./internal/web/api
