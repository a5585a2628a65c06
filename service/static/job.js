"use strict";
const jobId = new URLSearchParams(location.search).get("id");
document.getElementById("job-id").textContent = jobId;
document.getElementById("back").href = "/" + location.hash;
let seq = 0;
const loss = [], rel = [];

// A log-scale line chart as SVG (points: [step, value]); no library, no build step.
function chart(id, pts, color, label) {
  const box = document.getElementById(id);
  const W = 640, H = 220, L = 60, B = 30;
  const good = pts.filter(p => p[1] > 0 && isFinite(p[1]));
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.setAttribute("data-points", String(good.length));
  svg.setAttribute("aria-label", label);
  if (good.length) {
    const xs = good.map(p => p[0]), ys = good.map(p => Math.log10(p[1]));
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-9);
    const X = x => L + (W - L - 10) * (x - x0) / (x1 - x0), Y = y => 10 + (H - B - 10) * (1 - (y - y0) / (y1 - y0));
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("fill", "none"); line.setAttribute("stroke", color); line.setAttribute("stroke-width", "1.5");
    line.setAttribute("points", good.map(p => X(p[0]).toFixed(1) + "," + Y(Math.log10(p[1])).toFixed(1)).join(" "));
    svg.append(line);
    for (const [y, txt] of [[y1, fmt(10 ** y1)], [y0, fmt(10 ** y0)]]) {
      const t = document.createElementNS(svgNS, "text");
      t.setAttribute("x", 2); t.setAttribute("y", Y(y) + 4); t.setAttribute("font-size", "11"); t.textContent = txt;
      svg.append(t);
    }
    const t = document.createElementNS(svgNS, "text");
    t.setAttribute("x", W - 120); t.setAttribute("y", H - 8); t.setAttribute("font-size", "11");
    t.textContent = "step " + x0 + " … " + x1;
    svg.append(t);
  }
  box.replaceChildren(svg, el("div", { class: "muted" }, label + ": " + good.length + " point(s)" +
    (good.length ? ", latest " + fmt(good[good.length - 1][1]) : "")));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const j = await api("/v1/jobs/" + encodeURIComponent(jobId));
    for (;;) {  // read every new event (JSON pages)
      const r = await api("/v1/jobs/" + encodeURIComponent(jobId) + "/events?limit=1000&after=" + seq);
      for (const e of r.data) {
        seq = e.seq;
        const d = e.data;
        if (e.kind !== "progress") continue;
        if (d.loss != null && d.step > 0) loss.push([d.step, d.loss]);
        if (d.rel_l2 != null && (d.event === "eval" || !rel.length || rel[rel.length - 1][1] !== d.rel_l2)) rel.push([d.step, d.rel_l2]);
      }
      if (!r.has_more) break;
    }
    const p = j.progress || {};
    const rows = [["state", j.state + (j.reason ? " — " + j.reason : "")], ["problem", j.spec.problem.name + ", d = " + j.spec.problem.dim],
      ["method", j.spec.solver.method], ["step", (p.step == null ? "–" : p.step) + (p.steps ? " / " + p.steps : "")],
      ["loss", fmt(p.loss)], ["rel L2", fmt(p.rel_l2)], ["steps/s", fmt(p.steps_per_s)], ["ETA [s]", fmt(p.eta_s)],
      ["created", j.created_at], ["finished", j.finished_at || "–"]];
    if (j.metrics) rows.push(["best rel L2", fmt(j.metrics.best_rel_l2)], ["null rel L2", fmt(j.metrics.null_rel_l2)]);
    document.getElementById("summary").replaceChildren(...rows.map(([k, v]) =>
      el("tr", {}, el("th", {}, k), el("td", { id: "f-" + k.replace(/\W+/g, "-") }, v))));
    chart("loss-chart", loss, "#0a58ca", "loss");
    chart("rel-chart", rel, "#198754", "rel L2");
    const arts = await api("/v1/jobs/" + encodeURIComponent(jobId) + "/artifacts");
    document.getElementById("artifacts").replaceChildren(...arts.data.map(a =>
      el("li", {}, el("a", { href: a.url }, a.name), " (" + a.size + " bytes, " + a.media_type + ")")));
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "muted";
    if (["succeeded", "failed", "cancelled"].includes(j.state)) clearInterval(timer);
  } catch (e) {
    status.textContent = "error: " + e.message;
    status.className = "err";
  }
}

const timer = setInterval(refresh, 2000);
refresh();
