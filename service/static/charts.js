// Line charts of training curves on uPlot (vendored, /static/vendor): log-scale y, labelled axes with ticks,
// hover values in the legend. One chart per box; ``draw`` again replaces the data (live updates).
"use strict";

const COLORS = ["#0a58ca", "#d63384", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#6c757d", "#dc3545"];
const X_AXES = {
  step: { key: "step", label: "step" },
  time: { key: "train_s", label: "training time [s]" },
};

// series: [{label, values (aligned with xs), color, dash, points, pointSize, spanGaps}]; opts: {title, xLabel, yLabel, logY}.
// The box gets data-points="n,n,…" (non-null values per series) so tests and people can count what is drawn.
function drawChart(box, xs, series, opts) {
  const width = Math.max(320, Math.min(box.clientWidth || 900, 1100));
  const data = [xs, ...series.map(s => s.values)];
  const fmtTick = (u, vals) => vals.map(v => v == null ? "" : fmt(v, 2));
  // Log ticks that stay readable: over more than three decades only powers of ten, over more than one only
  // 1, 2 and 5 times a power of ten (else the labels overlap and the grid turns into a grey band).
  const decades = (u, splits) => {
    const ratio = u.scales.y.max / u.scales.y.min;
    const mantissa = v => Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9));
    const keep = ratio > 1e3 ? [1] : ratio >= 9.99 ? [1, 2, 5] : null;
    return keep ? splits.map(v => (keep.includes(mantissa(v)) ? v : null)) : splits;
  };
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7];
  const conf = {
    title: opts.title,
    width,
    height: opts.height || 280,
    scales: { x: { time: false }, y: opts.logY === false ? {} : { distr: 3, log: 10, range: logRange } },
    axes: [
      { label: opts.xLabel, stroke: "#444", grid: { stroke: "#eee" }, ticks: { stroke: "#ccc" },
        ...(opts.xLabel === X_AXES.step.label ? { incrs: steps } : {}) },  // whole steps only
      { label: opts.yLabel, stroke: "#444", grid: { stroke: "#eee" }, ticks: { stroke: "#ccc" }, size: 70,
        values: fmtTick, ...(opts.logY === false ? {} : { filter: decades }) },
    ],
    series: [
      { label: opts.xLabel, value: (u, v) => v == null ? "–" : fmt(v, 3) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || COLORS[i % COLORS.length],
        width: s.width || 1.5,
        dash: s.dash,
        spanGaps: s.spanGaps ?? true,  // false where a gap means "unknown there", not "not measured at this x"
        points: { show: s.points ?? "auto", size: s.pointSize || 5 },
        value: (u, v) => v == null ? "–" : fmt(v, 4),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
  box.replaceChildren();
  const drawn = opts.logY === false ? v => v != null : v => v != null && v > 0;  // log axis: positive values only
  const counts = series.map(s => s.values.filter(drawn).length);
  box.dataset.points = counts.join(",");
  box.dataset.series = series.map(s => s.label).join("|");
  if (!xs.length || counts.every(n => n === 0)) {
    box.append(el("p", { class: "muted empty" }, opts.title + ": no data yet"));
    return null;
  }
  return new uPlot(conf, data, box);
}

// Whole decades around the data (a single value gets one decade either side), so log ticks stay readable.
function logRange(u, min, max) {
  if (min == null || max == null) return [0.1, 10];
  const lo = 10 ** Math.floor(Math.log10(min)), hi = 10 ** Math.ceil(Math.log10(max));
  return hi > lo ? [lo, hi] : [lo / 10, hi * 10];
}

// Rows ({step, train_s, …}) to aligned columns for the chosen x axis: rows without an x value are skipped.
function columns(rows, xAxis, keys) {
  const xk = X_AXES[xAxis].key;
  const kept = rows.filter(r => r[xk] != null);
  const pos = v => (v != null && v > 0 ? v : null);  // log scale: non-positive values cannot be drawn
  return { xs: kept.map(r => r[xk]), cols: Object.fromEntries(keys.map(k => [k, kept.map(r => pos(r[k]))])) };
}

// A horizontal line at ``value`` across xs (the constant null on the error plot).
function constantLine(xs, value) {
  return xs.map(() => value);
}

// Several tables [{xs, ys}] on the union of their xs (each series null where it has no point).
function alignSeries(tables) {
  const all = [...new Set(tables.flatMap(t => t.xs))].sort((a, b) => a - b);
  const index = new Map(all.map((x, i) => [x, i]));
  return {
    xs: all,
    ys: tables.map(t => {
      const out = new Array(all.length).fill(null);
      t.xs.forEach((x, i) => { out[index.get(x)] = t.ys[i]; });
      return out;
    }),
  };
}
