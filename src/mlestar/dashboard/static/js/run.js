// One run: header, tabs (overview, the seven stages, lineage, audit, files), and
// polling every 2 s while the run is going (state, pipeline and training curves).

import { badge, clear, commandLine, el, errorBox, fmtBytes, fmtDuration, fmtTime, getJSON, poll, runApi, section, table } from "./dom.js";
import { lineageGraph, pipeline } from "./graphs.js";
import { stagePanel } from "./stages.js";

const POLL_MS = 2000;
const EXTRA_TABS = [["lineage", "Lineage"], ["audit", "Audit"], ["files", "Files"]];

function currentTab(detail) {
  const name = decodeURIComponent(location.hash.slice(1));
  const known = ["overview", ...detail.stages.map((s) => s.name), ...EXTRA_TABS.map((t) => t[0])];
  return known.includes(name) ? name : "overview";
}

function runHeader(detail) {
  const run = detail.run;
  const p = run.primary;
  const target = p && p.target_text ? ` (target ${p.higher_is_better ? "≥" : "≤"} ${p.target_text})` : "";
  const live = run.status === "running" ? el("span", { class: "live", "data-testid": "live" }, "live · updates every 2 s") : null;
  return el("div", { class: "run-header" },
    el("h1", {}, run.run_id),
    el("div", { class: "meta" }, badge(run.status), live,
      el("span", {}, `project ${run.project}`), el("span", {}, `started ${fmtTime(run.created)}`),
      el("span", {}, `duration ${fmtDuration(run.duration)}`),
      p ? el("span", { class: p.met === false ? "unmet" : p.met ? "met" : null }, `${p.metric} ${p.value_text}${target}`) : null),
    detail.failure ? el("div", { class: "error", "data-testid": "failure" }, `failed: ${detail.failure.message}`) : null);
}

function tabBar(detail, active) {
  const tabs = [["overview", "Overview"], ...detail.stages.map((s) => [s.name, `${s.number}. ${s.title.replace(/\s*\(.*\)$/, "")}`]), ...EXTRA_TABS];
  return el("nav", { class: "tabs", "aria-label": "run sections" }, tabs.map(([name, label]) => {
    const stage = detail.stages.find((s) => s.name === name);
    return el("a", { href: `#${name}`, class: ["tab", name === active ? "active" : null, stage ? `status-${stage.status}` : null], "data-tab": name }, label);
  }));
}

function remedyCell(gate) {
  if (gate.passed) return el("span", { class: "muted" }, "-");
  if (!gate.remedy) return el("span", { class: "unmet" }, gate.exhausted ? "none: attempts exhausted" : "none");
  const r = gate.remedy;
  return el("span", {}, el("strong", {}, r.remedy), ` (${r.diagnosis}: ${r.evidence}); back to ${r.return_to}`);
}

function gatesSection(detail) {
  if (!detail.gates.length) return section("Gates", el("p", { class: "muted" }, "no gate has been checked in this run"));
  return section("Gates", table([
    { label: "attempt", cell: (g) => String(g.attempt ?? "-") },
    { label: "gate", cell: (g) => g.name },
    { label: "stage", cell: (g) => g.stage },
    { label: "metric", cell: (g) => g.metric },
    { label: "threshold", cell: (g) => `${g.op} ${g.threshold_text}` },
    { label: "value", cell: (g) => g.value_text },
    { label: "verdict", cell: (g) => badge(g.passed ? "passed" : "failed") },
    { label: "remedy chosen", cell: remedyCell },
  ], detail.gates, { testid: "gates-table", rowClass: (g) => (g.passed ? "gate-passed" : "gate-failed") }));
}

function loopbackSection(detail) {
  if (!detail.loopbacks.length) return null;
  return section("Loop-backs", el("ol", { class: "loopbacks" }, detail.loopbacks.map((l) =>
    el("li", {}, `${l.from} → ${l.to}: gate “${l.gate}” failed; remedy ${l.remedy}`,
      l.diagnosis ? el("span", { class: "muted" }, ` (${l.diagnosis}: ${l.evidence})`) : null))));
}

function metricsSection(detail) {
  return section("Metrics", table([
    { label: "metric", cell: (m) => m.metric },
    { label: "value", cell: (m) => m.text, class: "num" },
    { label: "stage", cell: (m) => m.stage || "-" },
    { label: "meaning", cell: (m) => m.description },
  ], detail.metrics, { testid: "metrics-table" }));
}

export function toolsSection(detail) {
  return section("Tools", el("p", { class: "muted" }, "Run these in a terminal to open the run in other viewers."),
    detail.tools.map((t) => el("div", { class: "tool", "data-tool": t.name },
      el("h3", {}, t.name, t.available ? null : el("span", { class: "muted small" }, " (nothing to show yet)")),
      commandLine(t.command), el("span", { class: "muted small" }, `then open ${t.url}`))));
}

function overview(detail, runId) {
  const chart = pipeline(detail.stages, detail.loopbacks, { onSelect: (name) => { location.hash = name; } });
  return el("div", {}, section("Pipeline", el("div", { class: "pipeline-wrap" }, chart)),
    gatesSection(detail), loopbackSection(detail), metricsSection(detail), toolsSection(detail));
}

function artifactCard(a) {
  return el("div", { class: "artifact-card", "data-testid": "artifact-card" },
    el("h3", {}, a.path),
    el("dl", {}, el("dt", {}, "sha256"), el("dd", { class: "mono" }, a.sha256), el("dt", {}, "size"), el("dd", {}, fmtBytes(a.size)),
      el("dt", {}, "producer"), el("dd", {}, a.producer), el("dt", {}, "consumers"), el("dd", {}, a.consumers.join(", ") || "none")),
    a.url ? el("a", { href: a.url, class: "download", download: a.path.split("/").pop() }, "download") : el("span", { class: "muted" }, "file no longer present"));
}

function lineageTab(data) {
  if (!data.available) return section("Lineage", el("p", { class: "muted" }, "this runs folder has no lineage.db"));
  const card = el("div", { class: "artifact-detail" }, el("p", { class: "muted" }, "click an artifact to see its hash, size, producer and consumers"));
  const graph = lineageGraph(data, { onSelect: (a) => clear(card).append(artifactCard(a)) });
  const rows = table([
    { label: "artifact", cell: (a) => (a.url ? el("a", { href: a.url, class: "artifact-link" }, a.path) : a.path) },
    { label: "sha256", cell: (a) => el("span", { class: "mono", title: a.sha256 }, a.sha256.slice(0, 12)) },
    { label: "size", cell: (a) => fmtBytes(a.size), class: "num" },
    { label: "producer", cell: (a) => a.producer },
    { label: "consumers", cell: (a) => a.consumers.join(", ") || "-" },
  ], data.artifacts, { testid: "lineage-table" });
  const configs = Object.entries(data.config_inputs).map(([stage, keys]) => el("li", {}, `${stage}: `, el("span", { class: "mono" }, keys.join(", "))));
  return el("div", {}, section("Lineage graph", el("div", { class: "lineage-wrap" }, graph), card),
    section("Config read by each stage", el("ul", {}, configs)), section("Artifacts", rows));
}

function auditTab(data) {
  const v = data.verification;
  const verdict = v.ok ? el("div", { class: "ok", "data-testid": "audit-verdict" }, `chain verified: ${v.records} records, every hash and link intact`)
    : el("div", { class: "error", "data-testid": "audit-verdict" }, `chain broken (${v.records} records)`, el("ul", {}, v.problems.map((p) => el("li", {}, p))));
  const only = el("input", { type: "checkbox", id: "decisions-only" });
  const rows = table([
    { label: "#", cell: (r) => String(r.seq) },
    { label: "time", cell: (r) => fmtTime(r.time) },
    { label: "event", cell: (r) => r.event },
    { label: "stage", cell: (r) => r.stage || "-" },
    { label: "details", cell: (r) => el("code", { class: "details" }, JSON.stringify(r.data)) },
    { label: "hash", cell: (r) => el("span", { class: "mono", title: r.hash }, String(r.hash).slice(0, 10)) },
  ], data.records, { testid: "audit-table", rowClass: (r) => (r.decision ? "decision" : "other") });
  only.addEventListener("change", () => rows.classList.toggle("decisions-only", only.checked));
  return section("Audit trail", verdict, el("label", {}, only, " decisions only"), rows);
}

function filesTab(data) {
  return section("Files", table([
    { label: "path", cell: (f) => el("a", { href: f.url }, f.path) },
    { label: "size", cell: (f) => fmtBytes(f.size), class: "num" },
    { label: "", cell: (f) => el("a", { href: f.url, download: f.path.split("/").pop() }, "download") },
  ], data.files, { testid: "files-table" }));
}

async function tabContent(runId, tab, detail) {
  if (tab === "overview") return overview(detail, runId);
  if (tab === "lineage") return lineageTab(await getJSON(runApi(runId, "/lineage")));
  if (tab === "audit") return auditTab(await getJSON(runApi(runId, "/audit")));
  if (tab === "files") return filesTab(await getJSON(runApi(runId, "/files")));
  const panel = await getJSON(runApi(runId, `/stages/${encodeURIComponent(tab)}`));
  return stagePanel(panel, detail.stages.find((s) => s.name === tab), runId, detail);
}

/** Render the page of run `runId` into `root`; poll while it runs. */
export async function runPage(root, runId) {
  const head = el("div");
  const tabs = el("div");
  const body = el("div", { id: "tab-body" });
  clear(root).append(head, tabs, body);
  let detail = null;
  let drawn = 0;
  const drawTab = async () => {
    const ticket = ++drawn;
    const tab = currentTab(detail);
    clear(tabs).append(tabBar(detail, tab));
    try {
      const content = await tabContent(runId, tab, detail);
      if (ticket === drawn) clear(body).append(content);
    } catch (err) {
      if (ticket === drawn) clear(body).append(errorBox(err));
    }
  };
  const refresh = async () => {
    const next = await getJSON(runApi(runId));
    const changed = !detail || next.version !== detail.version;
    detail = next;
    document.title = `${detail.run.run_id} · mlestar`;
    clear(head).append(runHeader(detail));
    if (changed) await drawTab();
  };
  try {
    await refresh();
  } catch (err) {
    clear(root).append(errorBox(err));
    return;
  }
  window.addEventListener("hashchange", drawTab);
  poll(refresh, POLL_MS, () => detail.run.status === "running");
}
