// One job: its spec as submitted, progress and accuracy, and its curves from the full history (/history),
// updated live: the SSE stream (/events) says when something happened, /history?after= fetches the new rows.
"use strict";
const jobId = new URLSearchParams(location.search).get("id");
const base = "/v1/jobs/" + encodeURIComponent(jobId);
const TERMINAL = ["succeeded", "failed", "cancelled"];
document.getElementById("job-id").textContent = jobId;
document.getElementById("back").href = "/" + location.hash;
document.getElementById("aniso-help").append(ANISO_HELP + " ", el("a", { href: HELP }, "more"));

let job = null, rows = [], source = null, nullRel = null, lastSeq = 0, xAxis = "step", slices = null;
let historyDirty = true, historyBusy = false;

function setStatus(text, err) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = err ? "err" : "muted";
}

function kvRows(id, pairs) {
  document.getElementById(id).replaceChildren(...pairs.map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", { id: "f-" + k.replace(/\W+/g, "-") }, v))));
}

function renderJob() {
  const j = job, p = j.progress || {}, m = j.metrics || {};
  const st = document.getElementById("state");
  st.textContent = j.state + (j.cancel_requested && j.state === "running" ? " (cancelling)" : "");
  st.className = "state " + j.state;
  document.title = "SDZE job " + jobId + " — " + j.state;
  const reason = document.getElementById("reason");
  reason.hidden = !(j.reason && j.state !== "running");
  if (!reason.hidden) {
    const kids = [el("span", { class: "reason-line", title: j.reason }, oneLine(j.reason))];
    if (j.state === "failed") kids.push(" · ", downloadLink(base + "/log", jobId + "-error.log", "full log"));
    reason.replaceChildren(...kids);
  }
  const choice = j.metrics && j.metrics.method_choice ? [["method choice", j.metrics.method_choice]] : [];
  kvRows("spec", specFacts(j.spec, j.metrics).concat(choice, [["model", "width " + j.spec.model.width + ", depth " +
    j.spec.model.depth], ["evaluation", j.spec.eval.test_points + " test points every " + j.spec.eval.every + " steps"]]));
  document.getElementById("spec-json").textContent = JSON.stringify(j.spec, null, 2);
  const acc = accuracy(p, j.metrics);
  const out = [["step", (p.step == null ? "–" : p.step) + (p.steps ? " / " + p.steps : "")], ["loss", fmt(p.loss)]];
  if (acc.residual.length) {
    for (const [k, v] of acc.residual) out.push([metricName(k), fmt(v)]);
    out.push(["rel L2", "– (no exact solution: residual metrics instead)"]);
  } else {
    out.push(["rel L2", fmt(acc.rel)], ["aniso", anisoBadge(acc.aniso)], ["null rel L2", fmt(m.null_rel_l2 ?? nullRel)]);
    if (m.best_rel_l2 != null) out.push(["best rel L2", fmt(m.best_rel_l2) + " (step " + m.best_step + ")"]);
  }
  const ref = m.ref_rel_error ?? p.ref_rel_error;  // time-dependent problems with a point reference
  if (ref != null) {
    out.push(["ref. point error", fmt(ref) + (m.ref_u != null ? " (u(0, x₀) = " + fmt(m.ref_u, 5) + " vs " +
      fmt(m.ref_value, 5) + ")" : "")]);
    if (m.ref_null_rel_error != null) out.push(["terminal-only null", fmt(m.ref_null_rel_error) + " (g(x₀) alone)"]);
    if (m.best_ref_rel_error != null) out.push(["best ref. point error", fmt(m.best_ref_rel_error) + " (step " + m.best_step + ")"]);
  }
  out.push(["steps/s", fmt(p.steps_per_s)], ["training time [s]", fmt(m.wall_s ?? p.train_s)],
    ["ETA [s]", TERMINAL.includes(j.state) ? "–" : fmt(p.eta_s)], ["attempt", j.attempt],
    ["created", j.created_at], ["started", j.started_at || "–"], ["finished", j.finished_at || "–"]);
  kvRows("summary", out);
}

function renderCurves() {
  const resKeys = [...new Set(rows.flatMap(r => Object.keys(r).filter(k => RESIDUAL.test(k) && r[k] != null)))];
  const { xs, cols } = columns(rows, xAxis, ["loss", "rel_l2", "ref_rel_error", ...resKeys]);
  const xLabel = X_AXES[xAxis].label;
  drawChart(document.getElementById("loss-chart"), xs,
    [{ label: "training loss (mean residual²)", values: cols.loss }],
    { title: "Training loss", xLabel, yLabel: "loss" });
  const errBox = document.getElementById("error-chart"), note = document.getElementById("error-note");
  if (cols.rel_l2.some(v => v != null) || !resKeys.length) {
    const series = [{ label: "rel L2 (test set)", values: cols.rel_l2, points: true, width: 2 }];
    if (nullRel) series.push({ label: "constant null", values: constantLine(xs, nullRel), color: "#888", dash: [6, 4], points: false });
    drawChart(errBox, xs, series, { title: "Relative L2 error on the test set", xLabel, yLabel: "relative L2 error" });
    errBox.dataset.null = nullRel == null ? "" : String(nullRel);
    const timed = rows.some(r => r.ref_rel_error != null);  // time-dependent: the null is g + (T − t)·K
    note.textContent = nullRel ? "Dashed line: the best constant " + (timed ? "K in g + (T − t)·K" :
      "multiple of the boundary factor") + " (the null, " + fmt(nullRel) + "). Below the line = learned more than a " +
      "constant (aniso < 1)." : "";
  } else {
    drawChart(errBox, xs, resKeys.map(k => ({ label: metricName(k), values: cols[k], points: true })),
      { title: "PDE residual on held-out points (no exact solution)", xLabel, yLabel: "residual" });
    errBox.dataset.null = "";
    note.textContent = "This problem has no exact solution, so there is no rel L2 or null; the residual shows progress.";
  }
  renderRefCurve(xs, cols.ref_rel_error, xLabel);
  document.getElementById("curve-source").textContent = "— " + rows.length + " rows from " +
    ({ "history.csv": "history.csv (every step)", "history.csv+events": "history.csv and the latest progress events" }[source]
      || "progress events (thinned while it runs)");
}

// Time-dependent problems with a point reference: the relative error of u(0, x₀) over the run, with the
// terminal-only null g(x₀) (known once the job has finished: metrics.json's ref_null_rel_error).
function renderRefCurve(xs, values, xLabel) {
  const box = document.getElementById("ref-chart"), note = document.getElementById("ref-note");
  box.hidden = !values.some(v => v != null);
  if (box.hidden) { box.replaceChildren(); note.textContent = ""; return; }
  const m = (job && job.metrics) || {}, refNull = m.ref_null_rel_error;
  const series = [{ label: "rel. error at the reference point", values, points: true, width: 2 }];
  if (refNull) series.push({ label: "terminal-only null", values: constantLine(xs, refNull), color: "#888", dash: [6, 4], points: false });
  drawChart(box, xs, series, { title: "Relative error at the reference point (t = 0, x = x₀)", xLabel, yLabel: "relative error" });
  box.dataset.null = refNull == null ? "" : String(refNull);
  note.textContent = "|u(0, x₀) − u_ref| / |u_ref| at each evaluation" + (m.ref_value != null ? " (u_ref = " + fmt(m.ref_value, 5) + ")" : "") +
    (refNull ? "; dashed: the terminal condition alone, g(x₀) (" + fmt(refNull) + ")." : ".");
}

// Error against t from time_slices.json (written when a time-dependent job ends): per slice t = 0, T/4, …, T the
// rel L2 on seeded points where u is known there, both nulls, and u(t, x₀). Unknown slices are gaps, not joined.
function renderSlices() {
  const sec = document.getElementById("time-section");
  sec.hidden = !slices;
  if (!slices) return;
  const S = slices.slices, xs = S.map(s => s.t), pos = v => (v != null && v > 0 ? v : null);
  const col = k => S.map(s => pos(s[k]));
  const series = [
    { label: "rel L2 at t (model)", values: col("rel_l2"), points: true, pointSize: 9, width: 2, spanGaps: false },
    { label: "terminal-only null (N = 0)", values: col("null_terminal_rel_l2"), color: "#888", dash: [6, 4], points: true,
      pointSize: 7, spanGaps: false },
  ];
  if (S.some(s => s.null_rel_l2 != null))
    series.push({ label: "best-constant null g + (T − t)K", values: col("null_rel_l2"), color: "#555", dash: [2, 3],
      points: true, pointSize: 7, spanGaps: false });
  const n = S.length ? S[0].points : 0;
  drawChart(document.getElementById("time-chart"), xs, series,
    { title: "Relative L2 error against t (" + n + " seeded points per slice)", xLabel: "t", yLabel: "relative L2 error" });
  drawChart(document.getElementById("origin-chart"), xs, [
    { label: "model u(t, x₀)", values: S.map(s => s.u_origin), points: true, pointSize: 7, width: 2 },
    { label: "known u(t, x₀)", values: S.map(s => s.u_origin_ref), color: "#198754", dash: [4, 4], points: true,
      pointSize: 9, spanGaps: false },
  ], { title: "The solution at x₀ against t", xLabel: "t", yLabel: "u(t, x₀)", logY: false, height: 220 });
  const known = S.filter(s => s.truth != null).map(s => "t = " + fmt(s.t) + " (" + s.truth + ")");
  const everywhere = S.every(s => s.truth != null);
  document.getElementById("time-note").textContent = (everywhere
    ? "u is known at every t (the exact solution; g at t = T). "
    : "Known for this problem only at " + (known.join(", ") || "no slice") + ": there is no reference in between, " +
      "so those slices have no error (gaps). ") +
    "At t = 0 every point of a slice is x₀ (the law's marginal at t = 0), so that slice's error is the reference-point " +
    "error. A zero (u = g at t = T under the hard terminal rule, or the null there) cannot be drawn on the log axis.";
}

async function loadSlices(arts) {
  if (slices || !arts.some(a => a.name === "time_slices.json")) return;
  slices = await api(base + "/artifacts/time_slices.json");
  renderSlices();
}

// Fetch history rows after the last step held (the last row again: an evaluation may have completed it).
async function loadHistory() {
  if (historyBusy || !historyDirty) return;
  historyBusy = true;
  historyDirty = false;
  try {
    let after = rows.length ? rows[rows.length - 1].step - 1 : -1, fresh = [];
    for (;;) {
      const h = await api(base + "/history?after=" + after);
      if (source !== null && h.source !== source && rows.length) {  // the file replaced the events: reload all
        rows = []; source = h.source; after = -1; fresh = []; continue;
      }
      source = h.source; nullRel = h.null_rel_l2;
      fresh.push(...h.data);
      if (!h.has_more) break;
      after = h.next_after;
    }
    if (fresh.length) {
      const first = fresh[0].step;
      rows = rows.filter(r => r.step < first).concat(fresh);
    }
    renderCurves();
    if (job) renderJob();  // the null may have come with the history
  } catch (e) {
    setStatus("error: " + e.message, true);
  } finally {
    historyBusy = false;
  }
}

async function loadArtifacts() {
  const arts = await api(base + "/artifacts");
  document.getElementById("artifacts").replaceChildren(...(arts.data.length ? arts.data.map(a =>
    el("li", {}, downloadLink(a.url, a.name), " (" + a.size + " bytes, " + a.media_type + ")"))
    : [el("li", { class: "muted" }, "none yet (files appear when the job ends)")]));
  await loadSlices(arts.data);
}

async function refreshJob() {
  job = await api(base);
  renderJob();
  if (TERMINAL.includes(job.state)) { historyDirty = true; await loadArtifacts(); }
}

async function follow() {
  while (!TERMINAL.includes(job.state)) {
    setStatus("live · following the job's events");
    try {
      await followEvents(base + "/events", lastSeq, async (kind, d) => {
        lastSeq = d.seq;
        if (kind === "progress") {
          job.progress = d;
          renderJob();
          historyDirty = true;
        } else if (kind === "state") {
          await refreshJob();
        }
        setStatus("live · updated " + new Date().toLocaleTimeString());
      });
      await refreshJob();
    } catch (e) {
      setStatus("event stream: " + e.message + " (retrying)", true);
      await new Promise(r => setTimeout(r, 2000));
    }
  }
  setStatus("finished " + (job.finished_at || ""));
}

for (const r of document.querySelectorAll("input[name=x]"))
  r.addEventListener("change", () => { xAxis = r.value; renderCurves(); });
window.addEventListener("resize", () => { if (rows.length) renderCurves(); renderSlices(); });

(async () => {
  try {
    await refreshJob();
    await loadArtifacts();
    await loadHistory();
    setInterval(loadHistory, 1000);  // picks up rows whenever an event marked the history dirty
    follow();
  } catch (e) {
    setStatus("error: " + e.message, true);
  }
})();
