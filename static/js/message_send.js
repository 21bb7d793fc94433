/* Live E.164 validation and compliance-gate preview for the one-off send form. The server
 * (phonenumbers + the real gate) decides; this only asks it while the admin types. */
(function () {
  "use strict";
  var form = document.getElementById("send-form");
  if (!form) { return; }
  var to = form.querySelector("[name=to]"), purpose = form.querySelector("[name=purpose]");
  var sender = form.querySelector("[name=sender]");
  var feedback = document.getElementById("to-feedback"), gate = document.getElementById("gate-preview");
  var timer = null, seq = 0;
  var styles = { send: "success", defer: "warning", block: "danger" };

  function render(data) {
    to.classList.toggle("is-invalid", !data.valid && to.value.trim() !== "");
    to.classList.toggle("is-valid", data.valid);
    feedback.className = "small mb-3 " + (data.valid ? "text-success" : "text-danger");
    feedback.textContent = data.valid ? "Will be sent to " + data.e164 : (to.value.trim() ? data.error : "");
    if (sender) { sender.classList.toggle("is-invalid", !!data.sender_error); }
    if (data.sender_error) {
      var refusal = document.createElement("div");
      refusal.className = "alert alert-danger mb-0";
      refusal.textContent = "Cannot be sent yet: " + data.sender_error;
      gate.replaceChildren(refusal);
      return;
    }
    if (!data.decision) { return; }
    var box = document.createElement("div");
    box.className = "alert alert-" + styles[data.decision] + " mb-0";
    box.textContent = data.explanation + (data.send_after ? " Earliest: " + new Date(data.send_after).toLocaleString() + "." : "");
    gate.replaceChildren(box);
  }

  function check() {
    var mine = ++seq;
    var url = form.getAttribute("data-preview-url") + "?" + new URLSearchParams({ to: to.value, purpose: purpose.value, sender: sender ? sender.value : "" });
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { if (mine === seq) { render(data); } })
      .catch(function () { /* the server validates on submit anyway */ });
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(check, 250); }
  to.addEventListener("input", schedule);
  purpose.addEventListener("change", schedule);
  if (sender) { sender.addEventListener("change", schedule); }
  if (to.value) { check(); }
})();
