// One job: its spec as submitted, progress and accuracy, and its curves from the full history (/history),
// updated live: the SSE stream (/events) says when something happened, /history?after= fetches the new rows.
"use strict";
const jobId = new URLSearchParams(location.search).get("id");
const base = "/v1/jobs/" + encodeURIComponent(jobId);
const TERMINAL = ["succeeded", "failed", "cancelled"];
document.getElementById("job-id").textContent = jobId;
document.getElementById("back").href = "/" + location.hash;
document.getElementById("aniso-help").append(ANISO_HELP + " ", el("a", { href: HELP }, "more"));

let job = null, rows = [], source = null, nullRel = null, lastSeq = 0, xAxis = "step";
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
  kvRows("spec", specFacts(j.spec).concat([["model", "width " + j.spec.model.width + ", depth " + j.spec.model.depth],
    ["evaluation", j.spec.eval.test_points + " test points every " + j.spec.eval.every + " steps"]]));
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
  out.push(["steps/s", fmt(p.steps_per_s)], ["training time [s]", fmt(m.wall_s ?? p.train_s)],
    ["ETA [s]", TERMINAL.includes(j.state) ? "–" : fmt(p.eta_s)], ["attempt", j.attempt],
    ["created", j.created_at], ["started", j.started_at || "–"], ["finished", j.finished_at || "–"]);
  kvRows("summary", out);
}

function renderCurves() {
  const resKeys = [...new Set(rows.flatMap(r => Object.keys(r).filter(k => RESIDUAL.test(k) && r[k] != null)))];
  const { xs, cols } = columns(rows, xAxis, ["loss", "rel_l2", ...resKeys]);
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
    note.textContent = nullRel ? "Dashed line: the best constant multiple of the boundary factor (the null, " +
      fmt(nullRel) + "). Below the line = learned more than a constant (aniso < 1)." : "";
  } else {
    drawChart(errBox, xs, resKeys.map(k => ({ label: metricName(k), values: cols[k], points: true })),
      { title: "PDE residual on held-out points (no exact solution)", xLabel, yLabel: "residual" });
    errBox.dataset.null = "";
    note.textContent = "This problem has no exact solution, so there is no rel L2 or null; the residual shows progress.";
  }
  document.getElementById("curve-source").textContent = "— " + rows.length + " rows from " +
    ({ "history.csv": "history.csv (every step)", "history.csv+events": "history.csv and the latest progress events" }[source]
      || "progress events (thinned while it runs)");
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
window.addEventListener("resize", () => rows.length && renderCurves());

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
