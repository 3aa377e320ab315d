// hookflow's dashboard script: shows times in the viewer's time zone and
// keeps the live tail bounded. Loaded from /ui/assets (the CSP allows no
// inline script); no eval, no inline handlers.
(function () {
  "use strict";

  // <time datetime="…Z">… UTC</time> → the viewer's local time; the UTC
  // text stays as the tooltip.
  function localTimes(root) {
    if (!root || !root.querySelectorAll) return;
    var found = root.querySelectorAll("time[datetime]");
    var all = root.matches && root.matches("time[datetime]") ? [root] : [];
    for (var i = 0; i < found.length; i++) all.push(found[i]);
    for (var j = 0; j < all.length; j++) {
      var el = all[j];
      if (el.getAttribute("data-local")) continue;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      el.setAttribute("title", el.textContent);
      el.textContent = d.toLocaleString();
      el.setAttribute("data-local", "1");
    }
  }

  // The live tail prepends rows; keep the newest few hundred.
  var TAIL_MAX_ROWS = 500;
  function trimTail() {
    var tails = document.querySelectorAll("[data-tail]");
    for (var i = 0; i < tails.length; i++) {
      var rows = tails[i].children;
      while (rows.length > TAIL_MAX_ROWS) tails[i].removeChild(rows[rows.length - 1]);
      var empty = document.getElementById("empty-list");
      if (empty && rows.length > 0) empty.parentNode.removeChild(empty);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document.body);
  });
  document.addEventListener("htmx:load", function (e) {
    localTimes(e.target);
  });
  document.addEventListener("htmx:sseMessage", function () {
    trimTail();
  });
  // Whether the tail is connected, for the indicator (and for tests).
  function liveState(state) {
    return function (e) {
      if (e.target && e.target.setAttribute) e.target.setAttribute("data-live", state);
    };
  }
  document.addEventListener("htmx:sseOpen", liveState("open"));
  document.addEventListener("htmx:sseError", liveState("error"));
  document.addEventListener("htmx:sseClose", liveState("closed"));
})();
