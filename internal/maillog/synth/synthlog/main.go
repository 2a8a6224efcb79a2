// Command synthlog writes a realistic Postfix log, deterministically, for
// speed and memory measurements (scripts/audit-vs-grep.sh):
//
//	go run ./internal/maillog/synth/synthlog -size 300M -seed 1 > mail.log
//
// It prints what the log holds (lines, deliveries, delivered typos) on
// standard error.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/maillog/synth"
)

func main() {
	size := flag.String("size", "300M", "bytes to write (suffix K, M or G)")
	seed := flag.Uint64("seed", 1, "seed; the same seed gives the same log")
	iso := flag.Bool("iso", false, "RFC 3339 timestamps instead of syslog's")
	start := flag.String("start", "2024-10-01T00:00:00Z", "time of the first line (RFC 3339)")
	span := flag.Duration("span", 150*24*time.Hour, "time the log covers")
	typos := flag.Float64("typo-rate", 0.003, "share of outbound recipients that are typos")
	flag.Parse()
	t0, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "synthlog: -start: %v\n", err)
		os.Exit(2)
	}
	n, err := parseSize(*size)
	if err != nil {
		fmt.Fprintf(os.Stderr, "synthlog: -size: %v\n", err)
		os.Exit(2)
	}
	t, err := synth.Write(os.Stdout, synth.Options{Size: n, Seed: *seed, ISO: *iso, Start: t0, Span: *span, TypoRate: *typos})
	if err != nil {
		fmt.Fprintf(os.Stderr, "synthlog: %v\n", err)
		os.Exit(1)
	}
	var typo int64
	var doms []string
	for d, c := range t.TypoSent {
		typo += c
		doms = append(doms, d)
	}
	sort.Strings(doms)
	fmt.Fprintf(os.Stderr, "synthlog: %d lines, %d messages, %d sent, %d bounced, %d deferred; %d delivered typos (%s), %d typos bounced\n",
		t.Lines, t.Messages, t.Sent, t.Bounced, t.Deferred, typo, strings.Join(doms, " "), t.TypoNotSent)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size like 300M", s)
	}
	return n * mult, nil
}
