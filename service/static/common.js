// Shared by the two pages: token handling (from #token=… once, then sessionStorage) and API calls.
"use strict";
(function () {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) sessionStorage.setItem("sdze_token", decodeURIComponent(m[1]));
})();

async function api(path, accept) {
  const headers = { Accept: accept || "application/json" };
  const tok = sessionStorage.getItem("sdze_token");
  if (tok) headers.Authorization = "Bearer " + tok;
  const r = await fetch(path, { headers });
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(r.status + ": " + detail);
  }
  return r.json();
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
