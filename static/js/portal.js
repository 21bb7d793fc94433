/* Behaviour every page shares, wired from data attributes because the Content-Security-Policy
 * allows no inline handlers:
 * - <form data-confirm="Question?">: asks before submitting; Cancel keeps the form unsent.
 * - <button data-print>: prints the page (the print stylesheet hides navigation). */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) { window.print(); }
  });
})();
