// Command zoneserver serves a zone file with package scantest on a loopback
// address until interrupted, answering every question as a recursive
// resolver would, and never asking anyone else. scripts/scan-vs-dnstwist.sh
// runs it as the one resolver both tools use.
//
//	go run ./internal/scan/testdata/zoneserver -zone internal/scan/testdata/lookalikes.zone -addr 127.0.0.1:53
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stray-mail/stray/internal/scan/scantest"
)

func main() {
	zone := flag.String("zone", "", "zone file (RFC 1035 master format)")
	addr := flag.String("addr", "127.0.0.1:0", "loopback HOST:PORT to listen on")
	flag.Parse()
	b, err := os.ReadFile(*zone)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zoneserver:", err)
		os.Exit(2)
	}
	srv, err := scantest.Start(string(b), *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zoneserver:", err)
		os.Exit(2)
	}
	fmt.Println(srv.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Close()
	fmt.Fprintf(os.Stderr, "zoneserver: %d queries answered\n", srv.Queries())
}
