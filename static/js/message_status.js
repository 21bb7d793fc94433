/* A message (or call) that is not final yet: watch its status while callbacks arrive and reload
 * the page (timeline included) when it changes. The page names the status endpoint in the
 * data-status-url of its status badge, and the status shown in data-status. */
(function () {
  "use strict";
  var badge = document.querySelector("[data-status-url]");
  var url = badge && badge.getAttribute("data-status-url");
  if (!url || !window.fetch) { return; }
  var polls = 0;
  var timer = setInterval(function () {
    if (++polls > 300) { clearInterval(timer); return; }
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
      if (d.status !== badge.getAttribute("data-status")) { clearInterval(timer); window.location.reload(); }
    }).catch(function () {});
  }, 2000);
})();
