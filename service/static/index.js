"use strict";
async function refresh() {
  const status = document.getElementById("status");
  try {
    const rows = [];
    let cursor = null;
    for (let page = 0; page < 5; page++) {  // at most 500 jobs on the page
      const r = await api("/v1/jobs?limit=100" + (cursor ? "&after=" + encodeURIComponent(cursor) : ""));
      rows.push(...r.data);
      if (!r.has_more) break;
      cursor = r.next_cursor;
    }
    const body = document.getElementById("jobs");
    body.replaceChildren(...rows.map(row));
    const counts = {};
    for (const j of rows) counts[j.state] = (counts[j.state] || 0) + 1;
    status.textContent = rows.length + " job(s): " +
      (Object.entries(counts).map(([s, n]) => n + " " + s).join(", ") || "none yet") +
      " · updated " + new Date().toLocaleTimeString();
    status.className = "muted";
  } catch (e) {
    status.textContent = "error: " + e.message;
    status.className = "err";
  }
}

function row(j) {
  const p = j.progress || {};
  const frac = p.fraction == null ? (j.state === "succeeded" ? 1 : 0) : p.fraction;
  const bar = el("span", { class: "bar", title: Math.round(frac * 100) + "%" }, el("span", { style: "width:" + (100 * frac).toFixed(1) + "%" }));
  return el("tr", { "data-job": j.id, "data-state": j.state },
    el("td", {}, el("a", { href: "/job?id=" + encodeURIComponent(j.id) + location.hash, class: "job-id" }, j.id)),
    el("td", { class: "state " + j.state }, j.state + (j.cancel_requested && j.state === "running" ? " (cancelling)" : "")),
    el("td", {}, bar, " " + Math.round(frac * 100) + "%"),
    el("td", {}, (p.step == null ? "–" : p.step) + (p.steps ? " / " + p.steps : "")),
    el("td", {}, fmt(p.loss)),
    el("td", {}, fmt(p.rel_l2)),
    el("td", {}, j.spec.problem.name + " d=" + j.spec.problem.dim),
    el("td", { class: "muted" }, j.created_at));
}

refresh();
setInterval(refresh, 2000);
