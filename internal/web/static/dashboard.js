// stray dashboard: progressive enhancement only. Every page and action
// works without this file; it adds "select all" and confirmations.
"use strict";
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input.select-all").forEach(function (all) {
    all.addEventListener("change", function () {
      var form = all.closest("form");
      form.querySelectorAll('input[type=checkbox][name="id"]').forEach(function (b) { b.checked = all.checked; });
    });
  });
  document.querySelectorAll("button[data-confirm]").forEach(function (b) {
    b.addEventListener("click", function (ev) {
      if (!window.confirm(b.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
});
