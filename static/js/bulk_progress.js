/* Live bulk send progress: polls the page's JSON endpoint every 2 s while the send is running
 * (or being queued) and updates the counts and the bar in place. The counts are complete
 * without it (a reload shows the same numbers); the bar's segments get their widths here, from
 * data-width, because the Content-Security-Policy allows no style attributes in the markup. */
(function () {
  "use strict";
  var root = document.getElementById("bulk-progress");
  if (!root) { return; }
  root.querySelectorAll("[data-bar][data-width]").forEach(function (bar) {
    bar.style.width = bar.getAttribute("data-width") + "%";
  });
  if (!window.fetch) { return; }
  var url = root.getAttribute("data-progress-url");
  var fmt = new Intl.NumberFormat();
  var LIVE = { running: true, paused: true };

  function set(selector, text) {
    root.querySelectorAll(selector).forEach(function (el) { el.textContent = text; });
  }

  function render(p) {
    Object.keys(p.counts).forEach(function (k) { set('[data-count="' + k + '"]', fmt.format(p.counts[k])); });
    Object.keys(p.percents).forEach(function (k) {
      var bar = root.querySelector('[data-bar="' + k + '"]');
      if (bar) { bar.style.width = p.percents[k] + "%"; bar.setAttribute("aria-valuenow", p.percents[k]); }
    });
    set('[data-progress="done"]', fmt.format(p.done));
    set('[data-progress="total"]', fmt.format(p.total));
    set('[data-progress="percent"]', p.percent + "%");
    set("[data-bulk-status]", p.status_label);
    var awaiting = root.querySelector('[data-progress="awaiting"]');
    if (awaiting && !p.awaiting_queue) { awaiting.remove(); }
    if (p.status !== root.getAttribute("data-status")) {
      // Buttons depend on the status: reload once so they match (e.g. finished, paused elsewhere).
      window.location.reload();
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) { render(p); if (LIVE[p.status]) { window.setTimeout(poll, 2000); } })
      .catch(function () { window.setTimeout(poll, 10000); });
  }

  if (LIVE[root.getAttribute("data-status")]) { window.setTimeout(poll, 2000); }
})();
