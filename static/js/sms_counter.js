/* Live SMS encoding and segment count under a textarea[data-sms-counter="<output id>"].
 * The same rules as messaging/delivery/segments.py (GSM 03.38): the server's count on Preview is the
 * reference; this is a typing aid. Placeholders are counted as typed. */
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "\f^{}\\[~]|€";

  function stats(text) {
    var chars = Array.from(text);
    var gsm = chars.every(function (ch) { return BASIC.indexOf(ch) >= 0 || EXTENSION.indexOf(ch) >= 0; });
    var units = chars.map(function (ch) {
      if (gsm) { return EXTENSION.indexOf(ch) >= 0 ? 2 : 1; }
      return ch.codePointAt(0) > 0xFFFF ? 2 : 1;
    });
    var length = units.reduce(function (a, b) { return a + b; }, 0);
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67, segments = 0;
    if (length > 0 && length <= single) { segments = 1; }
    else if (length > single) {
      var used = 0; segments = 1;
      units.forEach(function (size) { if (used + size > multi) { segments += 1; used = 0; } used += size; });
    }
    return { encoding: gsm ? "GSM-7" : "UCS-2", length: length, segments: segments };
  }

  document.querySelectorAll("textarea[data-sms-counter]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("data-sms-counter"));
    if (!out) { return; }
    function update() {
      var s = stats(area.value);
      out.textContent = s.encoding + " · " + s.length + (s.encoding === "GSM-7" ? " septets" : " UTF-16 units") +
        " · " + s.segments + " segment" + (s.segments === 1 ? "" : "s") + " as typed";
      out.classList.toggle("text-warning-emphasis", s.encoding !== "GSM-7");
    }
    area.addEventListener("input", update);
    update();
  });
})();
