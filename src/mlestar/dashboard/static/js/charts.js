// Line charts as inline SVG, drawn here (no chart library). Hovering shows the
// values of every series at the nearest x.

import { el, svg } from "./dom.js";

const W = 560;
const H = 260;
const M = { top: 16, right: 18, bottom: 38, left: 62 };

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function extent(series, pick, fixed) {
  const values = series.flatMap((s) => s.points.map(pick)).filter((v) => Number.isFinite(v));
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (fixed && fixed[0] !== undefined) lo = Math.min(lo, fixed[0]);
  if (fixed && fixed[1] !== undefined) hi = Math.max(hi, fixed[1]);
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) return [lo - (Math.abs(lo) || 1) * 0.1, hi + (Math.abs(hi) || 1) * 0.1];
  return [lo, hi];
}

function scales(series, opts) {
  const [x0, x1] = extent(series, (p) => p[0], [undefined, opts.xMax]);
  const [y0, y1] = extent(series, (p) => p[1], opts.yRange);
  const pad = (y1 - y0) * 0.06;
  const lo = opts.yRange ? y0 : y0 - pad;
  const hi = opts.yRange ? y1 : y1 + pad;
  return {
    x: (v) => M.left + ((v - x0) / (x1 - x0 || 1)) * (W - M.left - M.right),
    y: (v) => H - M.bottom - ((v - lo) / (hi - lo || 1)) * (H - M.top - M.bottom),
    xDomain: [x0, x1],
    yDomain: [lo, hi],
  };
}

function axes(sc, opts) {
  const group = svg("g", { class: "axes" });
  for (const t of niceTicks(sc.yDomain[0], sc.yDomain[1])) {
    const y = sc.y(t);
    group.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y, y2: y }),
      svg("text", { class: "tick", x: M.left - 6, y: y + 4, "text-anchor": "end" }, opts.yFormat(t)));
  }
  const xTicks = niceTicks(sc.xDomain[0], sc.xDomain[1], Math.min(8, sc.xDomain[1] - sc.xDomain[0] || 1))
    .filter((t) => Number.isInteger(t));
  for (const t of xTicks) {
    group.append(svg("text", { class: "tick", x: sc.x(t), y: H - M.bottom + 16, "text-anchor": "middle" }, String(t)));
  }
  group.append(svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }),
    svg("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }),
    svg("text", { class: "label", x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle" }, opts.xLabel));
  return group;
}

function seriesPath(s, index, sc) {
  const points = s.points.filter((p) => Number.isFinite(p[1]));
  const d = points.map((p, i) => `${i ? "L" : "M"}${sc.x(p[0]).toFixed(1)},${sc.y(p[1]).toFixed(1)}`).join(" ");
  const group = svg("g", { class: `series series-${index}` }, svg("path", { d, class: "line" }));
  for (const p of points) group.append(svg("circle", { cx: sc.x(p[0]), cy: sc.y(p[1]), r: 2.5, class: "dot" }));
  return group;
}

function legend(series) {
  return el("div", { class: "legend" }, series.map((s, i) =>
    el("span", { class: `key series-${i}` }, el("span", { class: "swatch" }), s.name)));
}

function nearestX(series, x) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))];
  return xs.reduce((best, v) => (Math.abs(v - x) < Math.abs(best - x) ? v : best), xs[0]);
}

function hoverLayer(series, sc, opts) {
  const guide = svg("line", { class: "guide", y1: M.top, y2: H - M.bottom, visibility: "hidden" });
  const box = svg("rect", { class: "tip-box", rx: 4 });
  const lines = [svg("text", { class: "tip-title" })].concat(series.map((s, i) => svg("text", { class: `tip series-${i}` })));
  const tip = svg("g", { class: "tooltip", visibility: "hidden" }, box, lines);
  const overlay = svg("rect", { class: "overlay", x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom });
  const show = (event) => {
    const bounds = overlay.getBoundingClientRect();
    const px = M.left + ((event.clientX - bounds.left) / bounds.width) * (W - M.left - M.right);
    const x = nearestX(series, sc.xDomain[0] + ((px - M.left) / (W - M.left - M.right)) * (sc.xDomain[1] - sc.xDomain[0]));
    placeTip({ guide, tip, box, lines }, series, sc, opts, x);
  };
  const hide = () => {
    guide.setAttribute("visibility", "hidden");
    tip.setAttribute("visibility", "hidden");
  };
  overlay.addEventListener("mousemove", show);
  overlay.addEventListener("mouseleave", hide);
  return [guide, overlay, tip];
}

function placeTip(parts, series, sc, opts, x) {
  const { guide, tip, box, lines } = parts;
  const gx = sc.x(x);
  guide.setAttribute("x1", gx);
  guide.setAttribute("x2", gx);
  guide.setAttribute("visibility", "visible");
  lines[0].textContent = `${opts.xLabel} ${x}`;
  series.forEach((s, i) => {
    const point = s.points.find((p) => p[0] === x);
    lines[i + 1].textContent = `${s.name}: ${point && Number.isFinite(point[1]) ? opts.tipFormat(point[1]) : "-"}`;
  });
  const width = 12 + 7 * Math.max(...lines.map((l) => l.textContent.length));
  const height = 8 + 16 * lines.length;
  const left = gx + 10 + width > W - M.right ? gx - 10 - width : gx + 10;
  box.setAttribute("x", left);
  box.setAttribute("y", M.top);
  box.setAttribute("width", width);
  box.setAttribute("height", height);
  lines.forEach((line, i) => {
    line.setAttribute("x", left + 6);
    line.setAttribute("y", M.top + 16 + i * 16);
  });
  tip.setAttribute("visibility", "visible");
}

/**
 * A line chart. series: [{name, points: [[x, y], ...]}]; opts: {title, xLabel, xMax,
 * yRange: [lo, hi] to fix the axis, yFormat(v), tipFormat(v)}.
 */
export function lineChart(series, opts) {
  const o = { xLabel: "epoch", yFormat: (v) => String(v), tipFormat: (v) => String(v), ...opts };
  const shown = series.filter((s) => s.points.some((p) => Number.isFinite(p[1])));
  const figure = el("figure", { class: "chart", "data-chart": o.title }, el("figcaption", {}, o.title));
  if (!shown.length) {
    figure.append(el("p", { class: "muted" }, "no data yet"));
    return figure;
  }
  const sc = scales(shown, o);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "linechart", role: "img", "aria-label": o.title },
    axes(sc, o), shown.map((s, i) => seriesPath(s, i, sc)), hoverLayer(shown, sc, o));
  figure.append(chart, legend(shown));
  return figure;
}

/** The loss, accuracy and learning-rate charts of a training history (rows from history.json). */
export function trainingCharts(rows, plannedEpochs) {
  const pick = (key) => rows.map((r) => [r.epoch, r[key]]);
  const pct = (v) => `${(v * 100).toFixed(v >= 0.1 ? 0 : 1)}%`;
  const opts = { xMax: plannedEpochs || undefined };
  return el("div", { class: "charts" },
    lineChart([{ name: "train loss", points: pick("train_loss") }, { name: "val loss", points: pick("val_loss") }],
      { ...opts, title: "loss", yFormat: (v) => v.toPrecision(2), tipFormat: (v) => v.toFixed(4) }),
    lineChart([{ name: "train accuracy", points: pick("train_accuracy") }, { name: "val accuracy", points: pick("val_accuracy") }],
      { ...opts, title: "accuracy", yFormat: pct, tipFormat: (v) => `${(v * 100).toFixed(2)}%` }),
    lineChart([{ name: "learning rate", points: pick("lr") }],
      { ...opts, title: "learning rate", yFormat: (v) => v.toPrecision(2), tipFormat: (v) => v.toPrecision(4) }));
}
