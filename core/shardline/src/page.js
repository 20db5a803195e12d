// Shared by the quickstart page and the `run --web` page.
function hms(ms) { return new Date(ms).toTimeString().slice(0, 8); }
// Polls `url` every second and hands each document to `render`, which
// returns the header's "updated ..." text; keeps the header's status dot
// and its data-updates count. A 503 answer means the server is starting.
function pollEverySecond(url, render) {
  let updates = 0;
  async function refresh() {
    const dot = document.getElementById("dot"), updated = document.getElementById("updated");
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (response.status === 503) { updated.textContent = "starting\u2026"; return; }
      const data = await response.json();
      updates += 1;
      const text = render(data, updated);
      updated.dataset.updates = String(updates);
      updated.textContent = text;
      dot.className = "dot";
    } catch (e) {
      updated.textContent = "cannot reach shardline: " + e;
      dot.className = "dot stale";
    }
  }
  refresh();
  setInterval(refresh, 1000);
}
