// Package knowledge holds stray's built-in knowledge: popular mail providers
// and their legitimate near-neighbours, keyboard layouts, TLD confusions and the
// generated Unicode confusables table.
//
// It only supplies facts. It never decides whether an address is a typo; that
// is package detect's job. Nothing here reads files or the network at run time:
// tables are compiled in (generated ones by `go generate`).
package knowledge
