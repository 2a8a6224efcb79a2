// Unit tests of stray-check.js's DOM-free parts: node --test (run by
// TestSnippetWithNode). The DOM part is driven in a real browser by the
// end-to-end tests, through the demo page.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const sc = require(path.join(__dirname, "..", "static", "stray-check.js"));

test("splitRecipients splits on commas, semicolons and new lines, not inside quotes or <>", () => {
  const v = ' b@army.ml, "Smith, Jo" <jo@gmial.com>;c@x.org\n\n <d@y.org> ,, Ann <ann@z.org >';
  const rs = sc.splitRecipients(v);
  assert.deepEqual(rs.map((r) => r.address), ["b@army.ml", "jo@gmial.com", "c@x.org", "d@y.org", "ann@z.org"]);
  for (const r of rs) assert.equal(v.slice(r.start, r.end), r.address);
  assert.equal(rs[1].raw, '"Smith, Jo" <jo@gmial.com>');
  assert.deepEqual(sc.splitRecipients(""), []);
  assert.deepEqual(sc.splitRecipients(" , ; "), []);
  assert.deepEqual(sc.splitRecipients('"a\\"b, c" <e@f.g>').map((r) => r.address), ["e@f.g"]);
});

test("replaceRecipient replaces only the address, keeping names and separators", () => {
  assert.equal(sc.replaceRecipient("x@y.z, Bob <b@army.ml>; c@d.e", "b@army.ml", "b@army.mil"), "x@y.z, Bob <b@army.mil>; c@d.e");
  assert.equal(sc.replaceRecipient("b@army.ml", "b@army.ml", "b@army.mil"), "b@army.mil");
  assert.equal(sc.replaceRecipient("  j@gmial.com  ", "j@gmial.com", "j@gmail.com"), "  j@gmail.com  ");
  assert.equal(sc.replaceRecipient("a@b.c", "zz@b.c", "q@b.c"), "a@b.c");
  // Only the first of two identical recipients.
  assert.equal(sc.replaceRecipient("b@army.ml, b@army.ml", "b@army.ml", "b@army.mil"), "b@army.mil, b@army.ml");
});

test("describeResult says did you mean, and refused for a rejected recipient", () => {
  assert.equal(sc.describeResult({ address: "ok@ymail.com", verdict: "ok", action: "pass" }), null);
  assert.equal(sc.describeResult({ address: "x", verdict: "ok", action: "pass", error: "address: missing '@'" }), null);
  const hold = sc.describeResult({ address: "j@gmial.com", verdict: "hold", action: "hold", suggestion: "j@gmail.com" });
  assert.equal(hold.lead + hold.suggestion + hold.tail, "Did you mean j@gmail.com? Mail to j@gmial.com would be held until you confirm it.");
  const warn = sc.describeResult({ address: "j@gmial.com", verdict: "hold", action: "warn", suggestion: "j@gmail.com" });
  assert.equal(warn.lead + warn.suggestion + warn.tail, "Did you mean j@gmail.com?");
  const block = sc.describeResult({ address: "b@army.ml", verdict: "block", action: "reject", suggestion: "b@army.mil" });
  assert.equal(block.lead + block.suggestion + block.tail, "Mail to b@army.ml would be refused. Did you mean b@army.mil?");
  const none = sc.describeResult({ address: "a@x.ml", verdict: "block", action: "reject", suggestion: null, message: "a@x.ml: x.ml is on your deny list" });
  assert.equal(none.suggestion, "");
  assert.equal(none.lead, "Mail to a@x.ml would be refused. a@x.ml: x.ml is on your deny list");
});

function fakeAPI(handler) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    return handler(calls[calls.length - 1]);
  };
  return { calls, fetch };
}

function answer(status, body, headers) {
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: { get: (k) => (headers || {})[k] || null },
    json: async () => body,
  };
}

function okAnswer(call) {
  return answer(200, {
    results: call.body.recipients.map((a) =>
      a.endsWith("army.ml")
        ? { address: a, verdict: "block", action: "reject", suggestion: a.replace(/army\.ml$/, "army.mil"), intended: "army.mil", score: 0.8, reasons: [] }
        : { address: a, verdict: "ok", action: "pass", suggestion: null, intended: null, score: 0, reasons: [] }
    ),
  });
}

const settings = { api: "https://stray.example/api/v1/check", token: "stray_abcdefgh1234_" + "a".repeat(52), sender: "me@army.mil" };

test("the client posts JSON with the bearer token and caches answers", async () => {
  const api = fakeAPI(okAnswer);
  const warnings = [];
  const c = sc.createClient(api.fetch, () => 0, (m) => warnings.push(m));
  let res = await c.check(settings, ["b@army.ml", "ok@ymail.com", "b@army.ml"]);
  assert.equal(api.calls.length, 1);
  const call = api.calls[0];
  assert.equal(call.url, settings.api);
  assert.equal(call.init.method, "POST");
  assert.equal(call.init.headers.Authorization, "Bearer " + settings.token);
  assert.equal(call.init.headers["Content-Type"], "application/json");
  assert.equal(call.init.credentials, "omit");
  assert.deepEqual(call.body, { recipients: ["b@army.ml", "ok@ymail.com"], sender: "me@army.mil" });
  assert.equal(res.get("b@army.ml").verdict, "block");
  assert.equal(res.get("ok@ymail.com").verdict, "ok");
  res = await c.check(settings, ["ok@ymail.com", "b@army.ml", "new@army.ml"]);
  assert.equal(api.calls.length, 2);
  assert.deepEqual(api.calls[1].body.recipients, ["new@army.ml"]);
  assert.equal(res.size, 3);
  // Another sender is another question.
  await c.check({ ...settings, sender: "" }, ["ok@ymail.com"]);
  assert.equal(api.calls.length, 3);
  assert.equal("sender" in api.calls[2].body, false);
  assert.deepEqual(warnings, []);
});

test("the client fails quietly when the API is unreachable, and tries again later", async () => {
  let down = true;
  const api = fakeAPI((call) => {
    if (down) throw new TypeError("Failed to fetch");
    return okAnswer(call);
  });
  const warnings = [];
  const c = sc.createClient(api.fetch, () => 0, (m) => warnings.push(m));
  assert.equal(await c.check(settings, ["b@army.ml"]), null);
  assert.match(warnings[0], /stray-check: API unreachable: Failed to fetch/);
  down = false;
  assert.equal((await c.check(settings, ["b@army.ml"])).get("b@army.ml").verdict, "block");
});

test("the client gives up on a refused token and pauses when rate limited", async () => {
  let status = 401;
  const api = fakeAPI((call) => (status === 200 ? okAnswer(call) : answer(status, { error: "x" }, { "Retry-After": "3" })));
  const warnings = [];
  let now = 1000;
  const c = sc.createClient(api.fetch, () => now, (m) => warnings.push(m));
  assert.equal(await c.check(settings, ["a@b.c"]), null);
  assert.equal(await c.check(settings, ["a@b.c"]), null);
  assert.equal(api.calls.length, 1, "a refused token is not sent again");
  assert.equal(warnings.filter((w) => w.includes("401")).length, 1);
  const other = { ...settings, token: "stray_other1234567_" + "b".repeat(52) };
  status = 429;
  assert.equal(await c.check(other, ["a@b.c"]), null);
  assert.equal(await c.check(other, ["a@b.c"]), null);
  assert.equal(api.calls.length, 2, "no requests while paused");
  now += 3001;
  status = 200;
  assert.equal((await c.check(other, ["a@b.c"])).get("a@b.c").verdict, "ok");
  assert.equal(api.calls.length, 3);
});

test("the client ignores malformed answers and other errors", async () => {
  for (const resp of [answer(200, { results: [] }), answer(200, null), answer(500, {}), answer(400, { error: "x" })]) {
    const warnings = [];
    const c = sc.createClient(async () => resp, () => 0, (m) => warnings.push(m));
    assert.equal(await c.check(settings, ["a@b.c"]), null);
    assert.equal(warnings.length, 1);
  }
  const warnings = [];
  const c = sc.createClient(async () => { throw new Error("never"); }, () => 0, (m) => warnings.push(m));
  assert.equal(await c.check({ ...settings, token: "" }, ["a@b.c"]), null);
  assert.equal(await c.check({ ...settings, token: "" }, ["a@b.c"]), null);
  assert.equal(warnings.length, 1, "missing token said once");
  assert.match(warnings[0], /no API URL or token/);
});

test("the client asks for at most 100 recipients at a time", async () => {
  const api = fakeAPI(okAnswer);
  const c = sc.createClient(api.fetch, () => 0, () => {});
  const many = Array.from({ length: 150 }, (_, i) => `u${i}@x.org`);
  const res = await c.check(settings, many);
  assert.equal(api.calls[0].body.recipients.length, 100);
  assert.equal(res.size, 100);
});
