/*
 * stray-check.js: "Did you mean b@army.mil?" under an e-mail compose form's
 * recipient fields, from stray's HTTP check API (POST /api/v1/check).
 * No dependencies, no eval, no inline styles (style it with stray-check.css
 * or your own rules for the classes below). It never stops anyone from
 * sending: when the API cannot be reached it shows nothing and says why
 * with console.warn.
 *
 * Usage:
 *   <link rel="stylesheet" href="https://stray.example.org/api/v1/stray-check.css">
 *   <script src="https://stray.example.org/api/v1/stray-check.js" defer
 *           data-stray-token="stray_<id>_<secret>" data-stray-sender="me@example.org"></script>
 *   <input id="to" name="to" data-stray-check>
 *
 * Every <input> or <textarea> with data-stray-check (now or added later) is
 * checked as the user types (debounced) and on change/blur. Its value is a
 * list of recipients separated by commas, semicolons or new lines, each
 * "a@b.c", "<a@b.c>" or "Name <a@b.c>".
 *
 * Settings, as data- attributes on the field or else on the script tag, or
 * else from window.strayCheck.configure({api, token, sender}):
 *   data-stray-api     the check URL (default: "check" next to this script,
 *                      i.e. https://stray.example.org/api/v1/check)
 *   data-stray-token   the API token (stray token add NAME); nothing is
 *                      checked without one
 *   data-stray-sender  the sender's address (optional)
 *
 * Stable DOM (for styles and browser tests):
 *   after each field, a box
 *     <div class="stray-check" id="FIELDID-stray" role="status" aria-live="polite"
 *          data-state="idle|checking|done|error">
 *   (a field without an id gets "stray-field-N"; the field's
 *   aria-describedby gains the box's id), holding one item per flagged
 *   recipient:
 *     <p class="stray-check-item stray-check-VERDICT stray-check-action-ACTION"
 *        data-address="b@army.ml" data-suggestion="b@army.mil">
 *       <span class="stray-check-text">Did you mean
 *         <strong class="stray-check-suggestion">b@army.mil</strong>?</span>
 *       <button type="button" class="stray-check-fix">Use b@army.mil</button>
 *     </p>
 *   VERDICT is warn, hold or block; ACTION is reject, tempfail, hold, warn,
 *   log or pass. A refused recipient (action reject or tempfail) reads "Mail
 *   to b@army.ml would be refused. Did you mean b@army.mil?". The field has
 *   the class stray-check-flagged while any recipient is flagged, and fires
 *   a "stray-check" event (detail: {results}) after each answer.
 *
 * window.strayCheck: configure(settings), attach(field), scan(root),
 * check(field) (a Promise).
 */
(function (global) {
  "use strict";

  var VERSION = "1";
  var MAX_RECIPIENTS = 100;
  var TYPING_DELAY = 700; // ms after the last keystroke
  var LEAVE_DELAY = 150; // ms after change or blur (they come in pairs)
  var TIMEOUT = 4000; // ms for one API call
  var CACHE_MAX = 500;

  // splitRecipients splits a field's value into recipients: commas,
  // semicolons and new lines separate them, except inside quotes or <>.
  // Each has raw (the text, trimmed), address (inside <> if any), and
  // start/end of the address in value.
  function splitRecipients(value) {
    var out = [];
    var start = 0;
    var quoted = false;
    var angle = false;
    function add(end) {
      var seg = value.slice(start, end);
      var lead = seg.length - seg.replace(/^\s+/, "").length;
      var raw = seg.trim();
      if (raw === "") return;
      var a0 = start + lead;
      var a1 = a0 + raw.length;
      var lt = raw.lastIndexOf("<");
      var gt = raw.lastIndexOf(">");
      if (lt >= 0 && gt > lt) {
        var inner = raw.slice(lt + 1, gt);
        var innerLead = inner.length - inner.replace(/^\s+/, "").length;
        a0 = start + lead + lt + 1 + innerLead;
        a1 = a0 + inner.trim().length;
      }
      out.push({ raw: raw, address: value.slice(a0, a1), start: a0, end: a1 });
    }
    for (var i = 0; i < value.length; i++) {
      var c = value.charAt(i);
      if (c === "\\" && quoted) {
        i++;
      } else if (c === '"') {
        quoted = !quoted;
      } else if (!quoted && c === "<") {
        angle = true;
      } else if (!quoted && c === ">") {
        angle = false;
      } else if (!quoted && !angle && (c === "," || c === ";" || c === "\n" || c === "\r")) {
        add(i);
        start = i + 1;
      }
    }
    add(value.length);
    return out;
  }

  // replaceRecipient replaces the first recipient whose address is address
  // by suggestion, keeping its display name and the separators around it.
  function replaceRecipient(value, address, suggestion) {
    var rs = splitRecipients(value);
    for (var i = 0; i < rs.length; i++) {
      if (rs[i].address === address) {
        return value.slice(0, rs[i].start) + suggestion + value.slice(rs[i].end);
      }
    }
    return value;
  }

  // describeResult is what to say about one result: null when it is not
  // flagged, else {lead, suggestion, tail} (suggestion may be "").
  function describeResult(r) {
    if (!r || r.error || r.verdict === "ok" || !r.verdict) return null;
    var refused = r.action === "reject" || r.action === "tempfail";
    var lead = refused ? "Mail to " + r.address + " would be refused. " : "";
    if (r.suggestion) {
      var tail = "?";
      if (r.action === "hold") tail = "? Mail to " + r.address + " would be held until you confirm it.";
      return { lead: lead + "Did you mean ", suggestion: r.suggestion, tail: tail };
    }
    return { lead: lead + (r.message || r.address + " looks mistyped."), suggestion: "", tail: "" };
  }

  // createClient talks to the API. check(addresses) resolves to a Map from
  // address to result, or to null when the API could not answer (after a
  // console.warn): callers then show nothing. Answers are cached per sender
  // and address. fetchFn and now are injected for tests.
  function createClient(fetchFn, now, warn) {
    var cache = new Map();
    var pausedUntil = 0;
    var badToken = null;
    var warned = {};
    function warnOnce(key, msg) {
      if (warned[key]) return;
      warned[key] = true;
      warn("stray-check: " + msg);
    }
    function cacheKey(sender, a) {
      return sender + "\n" + a;
    }
    function remember(sender, r) {
      cache.delete(cacheKey(sender, r.address));
      cache.set(cacheKey(sender, r.address), r);
      while (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value);
    }
    function check(settings, addresses, signal) {
      var api = settings.api;
      var token = settings.token || "";
      var sender = settings.sender || "";
      var results = new Map();
      var ask = [];
      addresses.forEach(function (a) {
        var hit = cache.get(cacheKey(sender, a));
        if (hit) results.set(a, hit);
        else if (ask.indexOf(a) < 0 && ask.length < MAX_RECIPIENTS) ask.push(a);
      });
      if (ask.length === 0) return Promise.resolve(results);
      if (!api || !token) {
        warnOnce("config", "no API URL or token configured (data-stray-api, data-stray-token): not checking");
        return Promise.resolve(null);
      }
      if (token === badToken) return Promise.resolve(null);
      if (now() < pausedUntil) return Promise.resolve(null);
      var body = { recipients: ask };
      if (sender) body.sender = sender;
      var timer = null;
      var ctl = typeof AbortController === "function" ? new AbortController() : null;
      if (ctl) {
        timer = setTimeout(function () {
          ctl.abort();
        }, TIMEOUT);
        if (signal) {
          if (signal.aborted) ctl.abort();
          else signal.addEventListener("abort", function () { ctl.abort(); });
        }
      }
      return Promise.resolve()
        .then(function () {
          return fetchFn(api, {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
            body: JSON.stringify(body),
            credentials: "omit",
            cache: "no-store",
            signal: ctl ? ctl.signal : undefined,
          });
        })
        .then(function (resp) {
          if (resp.status === 401) {
            badToken = token;
            warnOnce("token:" + token.slice(0, 19), "the API refused the token (401): not checking");
            return null;
          }
          if (resp.status === 429) {
            var secs = parseInt(resp.headers.get("Retry-After"), 10);
            pausedUntil = now() + (secs > 0 ? secs : 5) * 1000;
            warn("stray-check: rate limited (429), pausing checks");
            return null;
          }
          if (!resp.ok) {
            warn("stray-check: the API answered " + resp.status);
            return null;
          }
          return resp.json().then(function (data) {
            if (!data || !Array.isArray(data.results) || data.results.length !== ask.length) {
              warn("stray-check: unexpected answer from the API");
              return null;
            }
            data.results.forEach(function (r, i) {
              r.address = ask[i];
              remember(sender, r);
              results.set(ask[i], r);
            });
            return results;
          });
        })
        .catch(function (err) {
          if (signal && signal.aborted) return null; // superseded by a newer check
          warn("stray-check: API unreachable: " + (err && err.message ? err.message : err));
          return null;
        })
        .then(function (res) {
          if (timer) clearTimeout(timer);
          return res;
        });
    }
    return { check: check };
  }

  var exported = {
    version: VERSION,
    splitRecipients: splitRecipients,
    replaceRecipient: replaceRecipient,
    describeResult: describeResult,
    createClient: createClient,
  };

  if (typeof module === "object" && module.exports) {
    module.exports = exported; // node --test
  }
  if (typeof document === "undefined") return;

  // --- Browser part. ---
  var script = document.currentScript;
  var configured = {};
  var client = createClient(
    function (url, init) { return global.fetch(url, init); },
    function () { return Date.now(); },
    function (msg) { if (global.console) global.console.warn(msg); }
  );
  var fields = new WeakMap(); // field → state
  var nextID = 1;

  function setting(field, name) {
    var attr = "data-stray-" + name;
    if (field.hasAttribute(attr)) return field.getAttribute(attr);
    if (configured[name] !== undefined && configured[name] !== null) return String(configured[name]);
    if (script && script.hasAttribute(attr)) return script.getAttribute(attr);
    if (name === "api" && script && script.src) {
      try {
        return new URL("check", script.src).href;
      } catch (e) {
        return "";
      }
    }
    return "";
  }

  function attach(field) {
    if (fields.has(field)) return;
    if (!field.id) field.id = "stray-field-" + nextID++;
    var box = document.createElement("div");
    box.className = "stray-check";
    box.id = field.id + "-stray";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("data-state", "idle");
    field.insertAdjacentElement("afterend", box);
    var described = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (described.indexOf(box.id) < 0) described.push(box.id);
    field.setAttribute("aria-describedby", described.join(" "));
    var st = { box: box, timer: null, seq: 0, ctl: null, shown: "" };
    fields.set(field, st);
    function later(ms) {
      clearTimeout(st.timer);
      st.timer = setTimeout(function () { check(field); }, ms);
    }
    field.addEventListener("input", function () { later(TYPING_DELAY); });
    field.addEventListener("change", function () { later(LEAVE_DELAY); });
    field.addEventListener("blur", function () { later(LEAVE_DELAY); });
    if (field.value.trim() !== "") later(LEAVE_DELAY);
  }

  function check(field) {
    var st = fields.get(field);
    if (!st) return Promise.resolve();
    clearTimeout(st.timer);
    var seq = ++st.seq;
    if (st.ctl) st.ctl.abort();
    st.ctl = typeof AbortController === "function" ? new AbortController() : null;
    var rs = splitRecipients(field.value).filter(function (r) { return r.address.indexOf("@") > 0; });
    if (rs.length === 0) {
      render(field, st, [], "idle");
      return Promise.resolve();
    }
    var settings = { api: setting(field, "api"), token: setting(field, "token"), sender: setting(field, "sender") };
    st.box.setAttribute("data-state", "checking");
    return client
      .check(settings, rs.map(function (r) { return r.address; }), st.ctl ? st.ctl.signal : null)
      .then(function (results) {
        if (seq !== st.seq) return; // a newer check is under way
        if (!results) {
          render(field, st, [], "error");
          return;
        }
        var list = [];
        rs.forEach(function (r) {
          var res = results.get(r.address);
          if (res) list.push(res);
        });
        render(field, st, list, "done");
        field.dispatchEvent(new CustomEvent("stray-check", { detail: { results: list } }));
      });
  }

  function render(field, st, results, state) {
    st.box.setAttribute("data-state", state);
    var flagged = [];
    var seen = {};
    results.forEach(function (r) {
      var d = describeResult(r);
      if (d && !seen[r.address]) {
        seen[r.address] = true;
        flagged.push({ r: r, d: d });
      }
    });
    field.classList.toggle("stray-check-flagged", flagged.length > 0);
    var sig = JSON.stringify(flagged.map(function (f) { return [f.r.address, f.r.verdict, f.r.action, f.d.lead, f.d.suggestion]; }));
    if (sig === st.shown) return; // unchanged: do not make screen readers repeat it
    st.shown = sig;
    while (st.box.firstChild) st.box.removeChild(st.box.firstChild);
    flagged.forEach(function (f) {
      var p = document.createElement("p");
      p.className = "stray-check-item stray-check-" + f.r.verdict + " stray-check-action-" + f.r.action;
      p.setAttribute("data-address", f.r.address);
      var text = document.createElement("span");
      text.className = "stray-check-text";
      text.appendChild(document.createTextNode(f.d.lead));
      if (f.d.suggestion) {
        p.setAttribute("data-suggestion", f.d.suggestion);
        var strong = document.createElement("strong");
        strong.className = "stray-check-suggestion";
        strong.textContent = f.d.suggestion;
        text.appendChild(strong);
      }
      text.appendChild(document.createTextNode(f.d.tail));
      p.appendChild(text);
      if (f.d.suggestion) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "stray-check-fix";
        b.textContent = "Use " + f.d.suggestion;
        b.addEventListener("click", function () {
          field.value = replaceRecipient(field.value, f.r.address, f.d.suggestion);
          field.dispatchEvent(new Event("input", { bubbles: true }));
          field.dispatchEvent(new Event("change", { bubbles: true }));
          field.focus();
          check(field);
        });
        p.appendChild(b);
      }
      st.box.appendChild(p);
    });
  }

  function scan(root) {
    var r = root || document;
    if (r.nodeType === 1 && r.matches("input[data-stray-check], textarea[data-stray-check]")) attach(r);
    if (r.querySelectorAll) {
      Array.prototype.forEach.call(r.querySelectorAll("input[data-stray-check], textarea[data-stray-check]"), attach);
    }
  }

  function configure(s) {
    ["api", "token", "sender"].forEach(function (k) {
      if (s && Object.prototype.hasOwnProperty.call(s, k)) configured[k] = s[k];
    });
  }

  global.strayCheck = {
    version: VERSION,
    configure: configure,
    attach: attach,
    scan: scan,
    check: check,
    splitRecipients: splitRecipients,
    replaceRecipient: replaceRecipient,
  };

  function start() {
    scan(document);
    if (typeof MutationObserver === "function") {
      new MutationObserver(function (muts) {
        muts.forEach(function (m) {
          Array.prototype.forEach.call(m.addedNodes, function (n) {
            if (n.nodeType === 1) scan(n);
          });
        });
      }).observe(document.documentElement, { childList: true, subtree: true });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(typeof window !== "undefined" ? window : globalThis);
