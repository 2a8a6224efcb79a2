// Whole-process counterpart of `stray check --known KNOWN --format json < INPUT` for mailcheck:
// loads mailcheck, reads the domain list (DOMAIN [COUNT] lines, # comments) and the input
// (one address a line), runs mailcheck.run with those domains for every line and writes one
// JSON line per address to stdout: {"address","flagged","suggestion"}.
// The in-process time of the check loop goes to stderr.
//
// usage: [PEERS_NODE_MODULES=DIR] node scripts/mailcheck-bench.mjs KNOWN_FILE INPUT_FILE
// PEERS_NODE_MODULES defaults to .cache/peers/node_modules at the repository root.
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { fileURLToPath } from 'url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nm = process.env.PEERS_NODE_MODULES || path.join(here, '..', '.cache', 'peers', 'node_modules');
const require = createRequire(path.join(nm, 'x.js'));
const mailcheck = require('mailcheck');

const [knownFile, inputFile] = process.argv.slice(2);
if (!knownFile || !inputFile) {
  process.stderr.write('usage: node mailcheck-bench.mjs KNOWN_FILE INPUT_FILE\n');
  process.exit(2);
}
const domains = fs.readFileSync(knownFile, 'utf8').split('\n')
  .map(l => l.trim()).filter(l => l && !l.startsWith('#')).map(l => l.split(/\s+/)[0]);
const lines = fs.readFileSync(inputFile, 'utf8').split('\n');
if (lines.length && lines[lines.length - 1] === '') lines.pop();

let suggestion = null;
const opts = {
  email: '',
  domains,
  suggested: r => { suggestion = r.full; },
  empty: () => { suggestion = null; },
};

const t0 = process.hrtime.bigint();
let buf = '';
let flagged = 0;
for (let line of lines) {
  if (line.endsWith('\r')) line = line.slice(0, -1);
  const address = line.trim();
  suggestion = null;
  opts.email = address;
  try { mailcheck.run(opts); } catch (e) { suggestion = null; }
  const f = !!suggestion && suggestion.toLowerCase() !== address.toLowerCase();
  flagged += f;
  buf += JSON.stringify({ address, flagged: f, suggestion: f ? suggestion : null }) + '\n';
  if (buf.length >= 1 << 16) { process.stdout.write(buf); buf = ''; }
}
if (buf) process.stdout.write(buf);
const ns = Number(process.hrtime.bigint() - t0);
const n = lines.length;
process.stderr.write(`mailcheck-bench: ${n} addresses (${flagged} flagged) in ${(ns / 1e6).toFixed(1)} ms in-process, ` +
  `${n ? (ns / n / 1000).toFixed(2) : '0'} us/address\n`);
