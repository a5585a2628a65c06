// The job list: state (with the one-line reason of a failed job), progress, accuracy with aniso, and
// checkboxes to compare jobs' curves on one plot.
"use strict";
const selected = new Set();
const compareBtn = document.getElementById("compare");
document.getElementById("aniso-help").append(ANISO_HELP + " ", el("a", { href: HELP + "#aniso" }, "more"));
document.getElementById("aniso-th").title = ANISO_HELP;

function updateCompare() {
  compareBtn.disabled = selected.size < 2;
  compareBtn.textContent = "compare selected (" + selected.size + ")";
}
compareBtn.addEventListener("click", () => {
  location.href = "/compare?ids=" + [...selected].map(encodeURIComponent).join(",") + location.hash;
});

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

function accuracyCells(j) {
  const acc = accuracy(j.progress, j.metrics);
  const ref = (j.metrics || {}).ref_rel_error ?? (j.progress || {}).ref_rel_error;
  if (acc.rel == null && ref != null)  // time-dependent, known only at a reference point: its error is the figure
    return [el("td", { title: "no exact solution: relative error at the reference point (0, x₀) instead of rel L2" },
      "ref. point " + fmt(ref)), el("td", { class: "muted", title: "a point reference has no constant null" }, "n/a")];
  if (acc.residual.length) {
    const [k, v] = acc.residual[0];
    return [el("td", { title: "no exact solution: " + metricName(k) + " instead of rel L2" }, "residual " + fmt(v)),
      el("td", { class: "muted", title: "no exact solution, so no null" }, "n/a")];
  }
  return [el("td", {}, fmt(acc.rel)), el("td", {}, anisoBadge(acc.aniso))];
}

function row(j) {
  const p = j.progress || {};
  const frac = p.fraction == null ? (j.state === "succeeded" ? 1 : 0) : p.fraction;
  const bar = el("span", { class: "bar", title: Math.round(frac * 100) + "%" }, el("span", { style: "width:" + (100 * frac).toFixed(1) + "%" }));
  const box = el("input", { type: "checkbox", class: "pick", "aria-label": "compare " + j.id });
  box.checked = selected.has(j.id);
  box.addEventListener("change", () => { box.checked ? selected.add(j.id) : selected.delete(j.id); updateCompare(); });
  const state = el("td", { class: "state " + j.state },
    j.state + (j.cancel_requested && j.state === "running" ? " (cancelling)" : ""));
  if (j.reason && (j.state === "failed" || j.state === "cancelled"))
    state.append(el("div", { class: "reason-line", title: j.reason }, oneLine(j.reason)));
  return el("tr", { "data-job": j.id, "data-state": j.state },
    el("td", {}, box),
    el("td", {}, el("a", { href: "/job?id=" + encodeURIComponent(j.id) + location.hash, class: "job-id" }, j.id)),
    state,
    el("td", {}, bar, " " + Math.round(frac * 100) + "%"),
    el("td", {}, (p.step == null ? "–" : p.step) + (p.steps ? " / " + p.steps : "")),
    el("td", {}, fmt(p.loss)),
    ...accuracyCells(j),
    el("td", {}, (j.spec.problem.name || "custom") + " d=" + j.spec.problem.dim),
    el("td", {}, methodLabel(j.spec, j.metrics)),
    el("td", { class: "muted nowrap", title: j.created_at }, (j.created_at || "").slice(5, 16).replace("T", " ")));
}

updateCompare();
refresh();
setInterval(refresh, 2000);
