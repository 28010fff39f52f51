// Progressive enhancement for the new-password component: a show/hide toggle,
// and each rule ticked as the patient types (POST /api/v1/password/check).
// Without JavaScript the form still works: the server lists what failed.
(function () {
  "use strict";
  document.querySelectorAll("[data-toggle-password]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-toggle-password"));
    if (!input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      button.textContent = button.getAttribute(show ? "data-hide" : "data-show");
      button.setAttribute("aria-pressed", show ? "true" : "false");
    });
  });

  var field = document.querySelector("[data-password-field]");
  if (!field) return;
  var input = field.querySelector("#new_password");
  var items = field.querySelectorAll("[data-rules]");
  var timer = null;
  var lang = document.documentElement.lang || "en";

  function show(violations) {
    var broken = {};
    violations.forEach(function (v) { broken[v.rule] = true; });
    items.forEach(function (item) {
      var unmet = item.getAttribute("data-rules").split(" ").some(function (rule) { return broken[rule]; });
      item.className = unmet ? "unmet" : "met";
      var state = item.querySelector(".state");
      state.textContent = state.getAttribute(unmet ? "data-unmet" : "data-met");
    });
  }

  function check() {
    if (!input.value) {
      items.forEach(function (item) { item.className = "pending"; item.querySelector(".state").textContent = ""; });
      return;
    }
    var form = input.form;
    var url = (form && form.getAttribute("data-check-url")) || "/api/v1/password/check";
    fetch(url + "?lang=" + encodeURIComponent(lang), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password: input.value })
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (result) {
      if (result) show(result.violations);
    }).catch(function () { /* the server still checks on submit */ });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  });
})();
