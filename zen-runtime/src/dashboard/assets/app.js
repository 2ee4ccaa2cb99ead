// zen dashboard: live refresh. On each `update` event the page fetches
// itself again and swaps its <main>; the server escaped every text in it.
"use strict";
(function () {
  const main = document.querySelector("main");
  const live = document.getElementById("live");
  if (!main || !window.EventSource) return;
  const source = new EventSource(main.dataset.events);
  let busy = false;
  source.addEventListener("open", () => live && live.classList.add("on"));
  source.addEventListener("error", () => live && live.classList.remove("on"));
  source.addEventListener("update", async () => {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const next = page.querySelector("main");
      const current = document.querySelector("main");
      if (next && current) current.replaceWith(document.importNode(next, true));
    } finally {
      busy = false;
    }
  });
})();
