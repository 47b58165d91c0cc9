// The stage pipeline (with loop-back edges) and the lineage graph, as inline SVG.

import { fmtBytes, fmtDuration, svg } from "./dom.js";

const NODE_W = 192;
const NODE_H = 78;
const GAP = 22;
const LOOP_STEP = 26;

function arrowMarker(id) {
  return svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }));
}

function shortTitle(title) {
  return title.replace(/\s*\(.*\)$/, "");
}

function stageNode(stage, x, y, selected, onSelect) {
  const attempts = stage.attempts > 1 ? ` · ${stage.attempts} attempts` : stage.attempts === 1 ? " · 1 attempt" : "";
  const group = svg("g", {
    class: ["stage-node", `status-${stage.status}`, selected ? "selected" : null],
    transform: `translate(${x},${y})`, tabindex: 0, role: "button", "data-stage": stage.name,
    "aria-label": `${stage.number} ${stage.title}: ${stage.status}`,
  },
  svg("title", {}, stage.summary || stage.reason || stage.error || stage.status),
  svg("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
  svg("text", { x: 10, y: 20, class: "node-title" }, `${stage.number}. ${shortTitle(stage.title)}`),
  svg("text", { x: 10, y: 40, class: "node-status" }, `${stage.status}${attempts}`),
  svg("text", { x: 10, y: 60, class: "node-time" }, stage.duration !== null && stage.duration !== undefined ? fmtDuration(stage.duration) : ""));
  const choose = () => onSelect && onSelect(stage.name);
  group.addEventListener("click", choose);
  group.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && choose());
  return group;
}

function loopEdge(edge, level, xOf, top) {
  const x1 = xOf(edge.from) + NODE_W * 0.6;
  const x2 = xOf(edge.to) + NODE_W * 0.4;
  const lift = top - LOOP_STEP * (level + 1);
  const label = `${edge.gate || "gate"} failed → ${edge.remedy || "?"}`;
  return svg("g", { class: "loopback", "data-from": edge.from, "data-to": edge.to },
    svg("title", {}, `${label}${edge.diagnosis ? ` (${edge.diagnosis}: ${edge.evidence || ""})` : ""}; back to ${edge.to}`),
    svg("path", { d: `M${x1},${top} C${x1},${lift} ${x2},${lift} ${x2},${top}`, "marker-end": "url(#loop-arrow)" }),
    svg("text", { x: (x1 + x2) / 2, y: lift + 2, "text-anchor": "middle", class: "loop-label" }, label));
}

/** The seven stages left to right, loop-backs as arcs above them (one level per loop-back). */
export function pipeline(stages, loopbacks, { selected, onSelect } = {}) {
  const valid = loopbacks.filter((e) => stages.some((s) => s.name === e.from) && stages.some((s) => s.name === e.to));
  const top = 18 + LOOP_STEP * valid.length + (valid.length ? 10 : 0);
  const width = stages.length * NODE_W + (stages.length - 1) * GAP + 20;
  const xOf = (name) => 10 + stages.findIndex((s) => s.name === name) * (NODE_W + GAP);
  const root = svg("svg", { viewBox: `0 0 ${width} ${top + NODE_H + 12}`, class: "pipeline", role: "img", "aria-label": "stage pipeline" },
    svg("defs", {}, arrowMarker("flow-arrow"), arrowMarker("loop-arrow")));
  stages.slice(1).forEach((s, i) => {
    const x = xOf(s.name);
    root.append(svg("line", { class: "flow", x1: x - GAP + 2, x2: x - 2, y1: top + NODE_H / 2, y2: top + NODE_H / 2, "marker-end": "url(#flow-arrow)" }));
  });
  valid.forEach((edge, level) => root.append(loopEdge(edge, level, xOf, top)));
  stages.forEach((s) => root.append(stageNode(s, xOf(s.name), top, s.name === selected, onSelect)));
  return root;
}

const COL_W = 200;
const ROW_H = 22;
const STAGE_Y = 8;
const STAGE_H = 34;
const FIRST_ROW = 64;

function basename(path) {
  const parts = path.split("/");
  return parts.slice(1).join("/") || path;
}

function clip(text, chars) {
  return text.length > chars ? `…${text.slice(text.length - chars + 1)}` : text;
}

function layoutArtifacts(data) {
  const columns = new Map(data.stages.map((s, i) => [s.name, { index: i, rows: 0 }]));
  return data.artifacts.filter((a) => columns.has(a.producer)).map((a) => {
    const column = columns.get(a.producer);
    const place = { artifact: a, x: 10 + column.index * COL_W + 14, y: FIRST_ROW + column.rows * ROW_H };
    column.rows += 1;
    return place;
  });
}

function highlight(node, path, on) {
  const root = node.ownerSVGElement;
  if (!root) return;
  for (const edge of root.querySelectorAll(".consume-edge")) {
    if (edge.getAttribute("data-path") === path) edge.classList.toggle("active", on);
  }
}

function artifactNode(place, onSelect) {
  const a = place.artifact;
  const node = svg("g", { class: ["artifact-node", a.consumers.length ? "consumed" : null], transform: `translate(${place.x},${place.y})`, tabindex: 0, "data-path": a.path },
    svg("title", {}, `${a.path}\nsha256 ${a.sha256}\n${fmtBytes(a.size)} · made by ${a.producer} · used by ${a.consumers.join(", ") || "nothing"}`),
    svg("rect", { width: COL_W - 28, height: ROW_H - 4, rx: 3 }),
    svg("text", { x: 5, y: 13 }, clip(basename(a.path), 24)));
  node.addEventListener("click", () => onSelect && onSelect(a));
  node.addEventListener("mouseenter", () => highlight(node, a.path, true));
  node.addEventListener("mouseleave", () => highlight(node, a.path, false));
  node.addEventListener("keydown", (e) => e.key === "Enter" && onSelect && onSelect(a));
  return node;
}

function consumerEdge(place, stageIndex) {
  const x1 = place.x + COL_W - 28;
  const y1 = place.y + (ROW_H - 4) / 2;
  const x2 = 10 + stageIndex * COL_W + COL_W / 2;
  const y2 = STAGE_Y + STAGE_H;
  return svg("path", { class: "consume-edge", "data-path": place.artifact.path, d: `M${x1},${y1} C${x2},${y1} ${x2},${y2 + 30} ${x2},${y2}`, "marker-end": "url(#lineage-arrow)" });
}

/** Stages as columns, each artifact under the stage that made it, edges to the stages that read it. */
export function lineageGraph(data, { onSelect } = {}) {
  const places = layoutArtifacts(data);
  const rows = Math.max(1, ...places.map((p) => (p.y - FIRST_ROW) / ROW_H + 1));
  const width = data.stages.length * COL_W + 20;
  const height = FIRST_ROW + rows * ROW_H + 12;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "lineage", role: "img", "aria-label": "artifact lineage" },
    svg("defs", {}, arrowMarker("lineage-arrow")));
  const indexOf = new Map(data.stages.map((s, i) => [s.name, i]));
  data.stages.forEach((s, i) => {
    const x = 10 + i * COL_W;
    const count = places.filter((p) => p.artifact.producer === s.name).length;
    if (count) root.append(svg("line", { class: "produce-rail", x1: x + 7, x2: x + 7, y1: STAGE_Y + STAGE_H, y2: FIRST_ROW + count * ROW_H - ROW_H / 2 }));
    root.append(svg("g", { class: "lineage-stage", transform: `translate(${x},${STAGE_Y})` },
      svg("rect", { width: COL_W - 14, height: STAGE_H, rx: 6 }),
      svg("text", { x: 8, y: 22 }, `${i + 1}. ${shortTitle(s.title)}`)));
  });
  for (const place of places) {
    for (const consumer of place.artifact.consumers) {
      if (indexOf.has(consumer)) root.append(consumerEdge(place, indexOf.get(consumer)));
    }
  }
  places.forEach((p) => root.append(artifactNode(p, onSelect)));
  return root;
}
