// The console's own script: no framework, no network beyond this server. Every page works
// without it; it adds live refresh, the bulk progress bar, "select all", and checking an
// amended order is JSON before it is sent (the server checks it against the schema).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A region with data-refresh="ms" is fetched again and swapped in place.
  for (const live of document.querySelectorAll("[data-refresh]")) {
    const every = Number(live.dataset.refresh) || 5000;
    setInterval(async () => {
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById(live.id);
        if (fresh) live.innerHTML = fresh.innerHTML;
      } catch (_) { /* the next refresh tries again */ }
    }, every);
  }

  // The bulk progress bar follows the job until every case was tried.
  const bulk = document.getElementById("bulk");
  if (bulk) {
    const follow = async () => {
      let finished = false;
      try {
        const response = await fetch(bulk.dataset.progress, { credentials: "same-origin" });
        if (response.ok) {
          const job = await response.json();
          document.getElementById("bulk-bar").value = job.done;
          document.getElementById("bulk-done").textContent = job.done;
          for (const result of job.results) {
            const row = document.querySelector(`#bulk-results tr[data-case="${result.case_id}"]`);
            if (!row) continue;
            row.querySelector(".outcome").textContent = result.outcome ?? "waiting";
            row.querySelector(".message").textContent = result.message ?? "";
          }
          finished = job.done >= job.total;
        }
      } catch (_) { /* tried again below */ }
      if (!finished) setTimeout(follow, 500);
      else bulk.classList.add("finished");
    };
    follow();
  }

  // "Select all" ticks every case of its group.
  for (const all of document.querySelectorAll("input.select-all")) {
    all.addEventListener("change", () => {
      for (const box of all.closest("table").querySelectorAll("input[name=case]")) {
        box.checked = all.checked;
      }
    });
  }

  // An amended order that is not JSON is refused before it is sent.
  const amend = document.getElementById("amend");
  if (amend) {
    amend.addEventListener("submit", (event) => {
      const error = document.getElementById("amend-error");
      try {
        const order = JSON.parse(document.getElementById("order-json").value);
        if (order === null || typeof order !== "object" || Array.isArray(order)) {
          throw new Error("the amended order must be a JSON object");
        }
        error.hidden = true;
      } catch (problem) {
        event.preventDefault();
        error.textContent = `Not sent: ${problem.message}`;
        error.hidden = false;
      }
    });
  }
});
