// Several jobs' curves on one plot (/compare?ids=a,b,…): each job's full history from /history, one series
// per job, the constant null of each distinct problem as a dashed line on the error plot.
"use strict";
const ids = (new URLSearchParams(location.search).get("ids") || "").split(",").filter(Boolean);
document.getElementById("back").href = "/" + location.hash;
const METRICS = {
  rel_l2: { title: "Relative L2 error on the test set", y: "relative L2 error", nulls: true },
  aniso_ratio: { title: "aniso = rel L2 ÷ null (below 1 = learned)", y: "aniso ratio", one: true },
  ref_rel_error: { title: "Relative error at the reference point (t = 0, x₀)", y: "relative error", refNulls: true },
  loss: { title: "Training loss", y: "loss (mean residual²)" },
};
const jobs = [];  // {job, rows, null}
let metric = new URLSearchParams(location.search).get("metric") || "rel_l2", xAxis = "step";

async function loadAll(id) {
  const base = "/v1/jobs/" + encodeURIComponent(id);
  const job = await api(base);
  let rows = [], after = -1, h;
  do {
    h = await api(base + "/history?after=" + after);
    rows = rows.concat(h.data);
    after = h.next_after;
  } while (h.has_more);
  return { job, rows, null: h.null_rel_l2 };
}

function label(j) {
  const s = j.job.spec;
  return methodLabel(s, j.job.metrics) + " · " + (s.problem.name || "custom") + " d=" + s.problem.dim + " · " +
    j.job.id.slice(-6);
}

function render() {
  const m = METRICS[metric], xk = X_AXES[xAxis].key;
  const tables = jobs.map(j => {
    const kept = j.rows.filter(r => r[xk] != null && r[metric] != null && r[metric] > 0);
    return { xs: kept.map(r => r[xk]), ys: kept.map(r => r[metric]) };
  });
  const { xs, ys } = alignSeries(tables);
  const series = jobs.map((j, i) => ({ label: label(j), values: ys[i], points: metric === "loss" ? undefined : true }));
  if (m.nulls) {
    const nulls = [...new Set(jobs.map(j => j.null).filter(v => v != null))];
    nulls.forEach((v, i) => series.push({ label: "constant null" + (nulls.length > 1 ? " " + (i + 1) : ""),
      values: constantLine(xs, v), color: "#888", dash: [6, 4], points: false }));
  }
  if (m.refNulls) {  // the terminal condition alone at the reference point, per distinct problem (finished jobs)
    const nulls = [...new Set(jobs.map(j => (j.job.metrics || {}).ref_null_rel_error).filter(v => v != null))];
    nulls.forEach((v, i) => series.push({ label: "terminal-only null" + (nulls.length > 1 ? " " + (i + 1) : ""),
      values: constantLine(xs, v), color: "#888", dash: [6, 4], points: false }));
  }
  if (m.one) series.push({ label: "aniso = 1 (a constant)", values: constantLine(xs, 1), color: "#888", dash: [6, 4], points: false });
  const box = document.getElementById("compare-chart");
  drawChart(box, xs, series, { title: m.title, xLabel: X_AXES[xAxis].label, yLabel: m.y, height: 380 });
  box.dataset.jobs = String(jobs.length);
  document.getElementById("note").textContent = m.refNulls
    ? "Dashed: the terminal condition alone, g(x₀). Below it, a method learned more than the terminal condition."
    : m.nulls || m.one ? "Dashed: the constant null. Below it, a method learned more than the best constant." : "";
}

function jobRow(j) {
  const job = j.job, m = job.metrics || {}, p = job.progress || {};
  const facts = Object.fromEntries(specFacts(job.spec, job.metrics));
  const acc = accuracy(p, job.metrics);
  return el("tr", { "data-job": job.id, "data-state": job.state },
    el("td", {}, el("a", { href: "/job?id=" + encodeURIComponent(job.id) + location.hash }, job.id)),
    el("td", { class: "state " + job.state }, job.state),
    el("td", {}, facts.problem), el("td", {}, facts.method), el("td", {}, facts.budget),
    el("td", {}, m.steps_done ?? p.step ?? "–"), el("td", {}, fmt(acc.rel)), el("td", {}, anisoBadge(acc.aniso)),
    el("td", {}, fmt(m.null_rel_l2 ?? j.null)));
}

(async () => {
  const status = document.getElementById("status");
  if (ids.length < 1) { status.textContent = "no jobs: open this page from the list (tick jobs, then compare)"; return; }
  try {
    jobs.push(...await Promise.all(ids.map(loadAll)));
    // time-dependent jobs known only at a reference point have no rel L2: show the reference-point error
    const has = k => jobs.some(j => j.rows.some(r => r[k] != null));
    if (metric === "rel_l2" && !has("rel_l2") && has("ref_rel_error")) metric = "ref_rel_error";
    if (!(metric in METRICS)) metric = "rel_l2";
    document.getElementById("metric").value = metric;
    document.getElementById("jobs").replaceChildren(...jobs.map(jobRow));
    render();
    status.textContent = jobs.length + " job(s), " + jobs.map(j => j.rows.length).join(" + ") + " history rows";
  } catch (e) {
    status.textContent = "error: " + e.message;
    status.className = "err";
  }
})();
document.getElementById("metric").addEventListener("change", e => { metric = e.target.value; render(); });
for (const r of document.querySelectorAll("input[name=x]"))
  r.addEventListener("change", () => { xAxis = r.value; render(); });
