// Package daemon owns the running stray: it loads the config, opens the
// store (whenever one is configured, hold and confirm or not), builds the
// engine from the config, the knowledge files, the correspondents learned
// from traffic and the run-time rules (BuildEngine: the one function that
// start, reload, the dashboard and the API use), and starts, reloads and
// stops the listeners around one gate.
//
// The commands that run no listener get what they need built here too
// (Checker, CheckConfig, OpenStore, OpenQuarantine, BackupStore), so that
// cli holds only flags, formats and exit codes.
//
// It decides nothing about addresses (that is gate, detect and policy) and
// speaks no protocol (the front ends do); it never prints for people and
// never picks an exit code (that is cli).
//
// A new front end goes here as one small StartX(addr) method beside
// StartPolicy: parse its address, open the listener with listen, make its
// server with the daemon's gate, and hand Serve and Shutdown to run; then
// add its listen.* key to the table in Start. The front end itself lives
// in its own package and only translates its protocol into gate calls.
package daemon
