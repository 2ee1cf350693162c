// The overview, live: the page's event stream says "changed" when a delivery applied
// something, and htmx fetches the counts and charts again (hx-get on #live). No build step.
(function () {
  "use strict";
  var section = document.querySelector("[data-live]");
  var state = document.querySelector("[data-live-state]");
  if (!section || !window.EventSource) return;
  var source = new EventSource(section.getAttribute("data-live"));
  source.addEventListener("live", function () { if (state) state.textContent = "on"; });
  source.addEventListener("changed", function () { window.htmx.trigger(section, "docobo-changed"); });
  source.addEventListener("error", function () {
    if (state) state.textContent = source.readyState === EventSource.CLOSED ? "off — reload the page" : "reconnecting…";
  });
})();
