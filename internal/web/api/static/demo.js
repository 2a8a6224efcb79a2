// demo.js: wiring for the compose demo page (/api/v1/demo). The token the
// user pastes is kept in sessionStorage (this tab only) and handed to
// stray-check.js; the form is never really sent.
(function () {
  "use strict";
  var KEY = "stray-demo-token";
  var token = document.getElementById("stray-demo-token");
  var from = document.getElementById("stray-demo-from");
  var form = document.getElementById("stray-demo-form");
  var tokenForm = document.getElementById("stray-demo-token-form");
  var result = document.getElementById("stray-demo-result");
  var sc = window.strayCheck;
  if (!sc) {
    console.warn("demo: stray-check.js did not load");
    return;
  }

  function stored() {
    try {
      return window.sessionStorage.getItem(KEY) || "";
    } catch (e) {
      return "";
    }
  }
  function recheck() {
    ["to", "cc"].forEach(function (id) {
      var f = document.getElementById(id);
      if (f && f.value.trim() !== "") sc.check(f);
    });
  }
  function useToken() {
    var t = token.value.trim();
    try {
      if (t) window.sessionStorage.setItem(KEY, t);
      else window.sessionStorage.removeItem(KEY);
    } catch (e) {
      // storage disabled: the token lasts as long as the page
    }
    sc.configure({ token: t });
    recheck();
  }

  token.value = stored();
  sc.configure({ token: token.value.trim(), sender: from.value.trim() });
  token.addEventListener("change", useToken);
  token.addEventListener("input", useToken);
  from.addEventListener("change", function () {
    sc.configure({ sender: from.value.trim() });
    recheck();
  });
  tokenForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    useToken();
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    result.textContent = "This is a demo: nothing was sent.";
  });
  recheck();
})();
