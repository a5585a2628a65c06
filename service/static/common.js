// Shared by the pages: token handling (from #token=… once, then sessionStorage), API calls, downloads with the
// token, the SSE reader, and how metrics and failure reasons are shown.
"use strict";
(function () {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) sessionStorage.setItem("sdze_token", decodeURIComponent(m[1]));
})();

function authHeaders(accept) {
  const headers = { Accept: accept || "application/json" };
  const tok = sessionStorage.getItem("sdze_token");
  if (tok) headers.Authorization = "Bearer " + tok;
  return headers;
}

async function api(path, accept) {
  const r = await fetch(path, { headers: authHeaders(accept) });
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(r.status + ": " + detail);
  }
  return r.json();
}

// A link that downloads with the bearer token (a plain <a href> cannot send it).
function downloadLink(path, filename, text) {
  const a = el("a", { href: path, download: filename, class: "download" }, text || filename);
  a.addEventListener("click", async (ev) => {
    if (!sessionStorage.getItem("sdze_token")) return;  // no token: the plain link works
    ev.preventDefault();
    const r = await fetch(path, { headers: authHeaders("*/*") });
    if (!r.ok) { alert("download failed: " + r.status); return; }
    const url = URL.createObjectURL(await r.blob());
    const tmp = el("a", { href: url, download: filename });
    document.body.append(tmp); tmp.click(); tmp.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return a;
}

// Follow a Server-Sent Events stream with the token (EventSource cannot send headers). Calls onEvent(kind, data)
// and resolves when the server ends the stream; the caller decides whether to follow again.
async function followEvents(path, lastId, onEvent) {
  const r = await fetch(path, { headers: { ...authHeaders("text/event-stream"), "Last-Event-ID": String(lastId || 0) } });
  if (!r.ok || !r.body) throw new Error(r.status + ": event stream refused");
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(kind, JSON.parse(data));
    }
  }
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
}

function fmt(x, digits) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-2 && x !== 0) ? x.toExponential(digits || 3) : x.toFixed(digits || 3);
}

// The server stores a one-line reason (service/reasons.py); this only guards jobs recorded before it did.
function oneLine(reason) {
  if (!reason) return "";
  const line = reason.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "").split("\n").find(s => s.trim()) || "";
  return line.length > 240 ? line.slice(0, 239) + "…" : line;
}

const HELP = "/help/metrics";
const ANISO_HELP = "aniso = rel L2 ÷ rel L2 of the best constant (the null): below 1, the model learned more than a constant.";

// Residual metrics (what problems without an exact solution report) and how to call them.
const RESIDUAL = /^(val_residual|residual_|boundary_)/;
const RESIDUAL_NAMES = {
  val_residual: "held-out residual (RMS)", residual_rms: "test residual (RMS)", residual_rel: "test residual (relative)",
  boundary_rms: "boundary error (RMS)", boundary_rel: "boundary error (relative)",
};
const metricName = k => RESIDUAL_NAMES[k] || k.replace(/_/g, " ");

function residualMetrics(obj) {
  const order = k => (k in RESIDUAL_NAMES ? Object.keys(RESIDUAL_NAMES).indexOf(k) : 99);
  return Object.entries(obj || {}).filter(([k, v]) => RESIDUAL.test(k) && typeof v === "number")
    .sort((a, b) => order(a[0]) - order(b[0]));
}

// The accuracy the user should look at: rel L2 and aniso where an exact solution exists, else residual metrics.
function accuracy(progress, metrics) {
  const m = metrics || {}, p = progress || {};
  const rel = m.rel_l2 ?? p.rel_l2, aniso = m.aniso_ratio ?? p.aniso_ratio;
  if (rel != null || aniso != null) return { rel, aniso, residual: [] };
  const res = residualMetrics(m).length ? residualMetrics(m) : residualMetrics(p);
  return { rel: null, aniso: null, residual: res };
}

function anisoBadge(aniso) {
  if (aniso == null) return el("span", { class: "muted" }, "–");
  const cls = aniso < 1 ? "learned" : "notlearned";
  return el("span", { class: "aniso " + cls, title: ANISO_HELP }, fmt(aniso));
}

// The method as run: a spec's "auto" is resolved per job (metrics.method once the job has reported).
function methodLabel(spec, metrics) {
  const asked = (spec.solver || {}).method || "auto";
  return asked === "auto" && metrics && metrics.method ? "auto → " + metrics.method : asked;
}

// Spec facts a person asks first: what was solved, how, with what budget.
function specFacts(spec, metrics) {
  const p = spec.problem || {}, s = spec.solver || {}, r = spec.resources || {};
  const budget = [s.steps != null ? s.steps + " steps" : null, s.time_limit_s != null ? s.time_limit_s + " s" : null]
    .filter(Boolean).join(" or ") || "–";
  const facts = [["problem", (p.name || "custom PDE") + ", d = " + p.dim]];
  if (p.domain) {
    const set = Object.entries(p.domain).filter(([k, v]) => v != null && k !== "kind");
    facts.push(["domain", p.domain.kind + (set.length ? " (" + set.map(([k, v]) => k + " " + v).join(", ") + ")" : "")]);
  }
  if (p.let) facts.push(["let", Object.entries(p.let).map(([k, v]) => k + " = " + v).join("; ")]);
  if (p.pde) {  // a user PDE, shown as written: operator[u] + F(u) = f
    const op = Object.entries(p.pde.operator || {}).filter(([, c]) => c != null && c !== 0)
      .map(([k, c]) => (c === 1 ? "" : c + "·") + k + "[u]").join(" + ");
    const reaction = p.pde.reaction && p.pde.reaction !== "0" ? " + F(u), F(u) = " + p.pde.reaction : "";
    facts.push(["PDE", (op || "0") + reaction + " = " + (p.pde.source ?? "f derived from the exact solution")]);
  }
  if (p.time) facts.push(["time", "u_t + … on [0, " + p.time.horizon + "), u(T, x) = " + p.time.terminal +
    " (" + (p.time.rule || "hard") + " terminal rule)"]);
  if (p.boundary) facts.push(["boundary u =", p.boundary]);
  if (p.exact) facts.push(["exact u* =", p.exact]);
  return facts.concat([["method", methodLabel(spec, metrics)], ["budget", budget], ["workers", r.workers ?? 1],
    ["seed", spec.seed ?? "–"]]);
}
