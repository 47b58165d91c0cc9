// Stage panels: what each stage found or made, then every file it wrote.

import { badge, commandLine, csvTable, el, fmtBytes, fmtDuration, fmtValue, gallery, imagesNamed, kvTable, section, table } from "./dom.js";
import { trainingCharts } from "./charts.js";
import { TABLE_RENDERERS } from "./tables.js";

function situation(panel) {
  const report = panel.json["report.json"] || {};
  const dataset = panel.json["dataset.json"] || {};
  const recs = panel.json["recommendations.json"] || {};
  const findings = (report.findings || []).map((f) => el("li", { class: `finding grade-${String(f.grade).replace(/\W/g, "")}` },
    badge(f.grade), " ", el("strong", {}, f.code), ": ", f.message));
  const classes = (dataset.class_names || []).map((name) => el("span", { class: "chip class-name" }, name));
  const splits = Object.entries(dataset.splits || {}).map(([name, s]) => `${name} ${s.size}`).join(", ");
  return [
    section("Findings", findings.length ? el("ul", { class: "findings" }, findings) : el("p", { class: "muted" }, "no findings")),
    section("Dataset", el("p", {}, `${dataset.name || "?"}: ${splits}; image shape ${JSON.stringify(dataset.image_shape || [])}`),
      el("div", { class: "chips", "data-testid": "class-names" }, classes), el("ul", {}, (dataset.notes || []).map((n) => el("li", {}, n)))),
    Object.keys(recs).length ? section("Recommendations", table([
      { label: "topic", cell: (r) => r[0] }, { label: "choice", cell: (r) => fmtValue(r[1].choice ?? r[1].level ?? "-") },
      { label: "reason", cell: (r) => r[1].reason || "" }], Object.entries(recs))) : null,
    panel.images.length ? section("Plots", gallery(panel.images)) : null,
  ];
}

function taskDefinition(panel) {
  const spec = panel.json["task_spec.json"] || {};
  const task = spec.task || {};
  const feas = spec.feasibility || {};
  return [section("Task", el("p", {}, `primary metric ${task.primary_metric}; secondary ${(task.secondary_metrics || []).join(", ") || "none"}`),
    Object.keys(task.targets || {}).length ? kvTable(task.targets) : el("p", { class: "muted" }, "no targets set"),
    el("p", {}, "feasibility: ", badge(feas.verdict || "unknown"), ` ${feas.reason || ""}`)),
  section("Throughput probe", kvTable(spec.probe || {}))];
}

function planning(panel) {
  const plan = panel.json["plan.json"] || {};
  const reasons = plan.reasons || {};
  return [section("Plan", table([
    { label: "setting", cell: (r) => r[0] }, { label: "value", cell: (r) => fmtValue(r[1]) },
    { label: "why", cell: (r) => reasons[r[0]] || "" }], Object.entries(plan.training || {}), { testid: "plan-table" }))];
}

function implementation(panel) {
  const h = panel.history || { rows: [] };
  const last = h.rows.length ? h.rows[h.rows.length - 1] : null;
  const status = h.live ? `live: epoch ${last ? last.epoch : 0} of ${h.planned_epochs ?? "?"}` : `${h.rows.length} epochs`;
  return [section("Training curves", el("p", { class: h.live ? "live" : "muted", "data-testid": "curve-status" }, `${status}${h.source ? ` (from ${h.source})` : ""}`),
    trainingCharts(h.rows, h.planned_epochs)),
  panel.json["metrics.json"] ? section("Result", kvTable(panel.json["metrics.json"])) : null];
}

function evaluation(panel) {
  const metrics = panel.json["metrics.json"] || {};
  return [
    section("Test metrics", kvTable(metrics), kvTable(panel.json["efficiency.json"] || {})),
    section("Confusion matrix", gallery(imagesNamed(panel, ["confusion_matrix"]))),
    section("Per-class results", csvTable(panel.tables["per_class.csv"], "per-class")),
    section("Misclassified examples", gallery(imagesNamed(panel, ["misclassified"]))),
    section("Calibration", gallery(imagesNamed(panel, ["reliability"]))),
  ];
}

function refinement(panel, detail) {
  const r = panel.json["refinement.json"] || {};
  const before = { "val accuracy (stage 4)": r.baseline_val_accuracy, "val accuracy (adopted)": r.refined_val_accuracy, adopted: r.adopted, "study seconds": r.study_seconds };
  const optuna = detail.tools.find((t) => t.name === "optuna-dashboard");
  return [
    section("Before / after", kvTable(before), el("p", {}, r.reason || ""), el("h3", {}, "best parameters"), kvTable(r.best_params || {})),
    section("Trials", csvTable(panel.tables["trials.csv"], "trials")),
    panel.images.length ? section("Plots", gallery(panel.images)) : null,
    optuna ? section("optuna-dashboard", commandLine(optuna.command)) : null,
  ];
}

function deployment(panel) {
  const d = panel.json["deployment.json"] || {};
  const parity = Object.values(d.parity || {});
  const bundle = panel.files.filter((f) => f.path.includes("/bundle/"));
  return [
    section("Parity", table([
      { label: "format", cell: (p) => p.format }, { label: "max |diff|", cell: (p) => fmtValue(p.max_abs_diff) },
      { label: "tolerance", cell: (p) => fmtValue(p.tolerance) }, { label: "top-1 agreement", cell: (p) => fmtValue(p.top1_agreement) },
      { label: "images", cell: (p) => fmtValue(p.n_images) }, { label: "verdict", cell: (p) => badge(p.passed ? "passed" : "failed") }], parity, { testid: "parity" })),
    section("Benchmark", kvTable({ "latency p50": fmtDuration((d.latency_s || {}).p50), "latency p95": fmtDuration((d.latency_s || {}).p95), "bundle size": fmtBytes(d.bundle_size_bytes) })),
    section("Bundle", table([
      { label: "file", cell: (f) => el("a", { href: f.url }, f.path.split("/bundle/")[1]) },
      { label: "size", cell: (f) => fmtBytes(f.size), class: "num" }], bundle, { testid: "bundle" }),
    el("div", { class: "chips" }, (panel.json["bundle/labels.json"] || []).map((name) => el("span", { class: "chip class-name" }, name))),
    d.serve ? commandLine(d.serve) : null),
  ];
}

const SPECIFIC = { situation_analysis: situation, task_definition: taskDefinition, action_planning: planning, implementation, evaluation, refinement, deployment };

function rawSections(panel) {
  const texts = Object.entries(panel.text).map(([name, text]) => el("details", { open: name.endsWith("report.md") || name.endsWith("plan.md") || name.endsWith("before_after.md") },
    el("summary", {}, name), el("pre", { class: "text" }, text)));
  const json = Object.entries(panel.json).map(([name, value]) => el("details", {}, el("summary", {}, name), el("pre", { class: "json" }, JSON.stringify(value, null, 2))));
  const reports = panel.reports.map((r) => el("li", {}, el("a", { href: r.url, target: "_blank", rel: "noopener" }, r.path), " (opens sandboxed)"));
  return [texts.length ? section("Reports", texts) : null, json.length ? section("Raw JSON", json) : null,
    reports.length ? section("HTML reports", el("ul", {}, reports)) : null];
}

function fileList(files) {
  return table([
    { label: "file", cell: (f) => el("a", { href: f.url, class: "artifact-link" }, f.path) },
    { label: "size", cell: (f) => fmtBytes(f.size), class: "num" },
    { label: "", cell: (f) => el("a", { href: f.url, download: f.path.split("/").pop() }, "download") }], files, { testid: "stage-files" });
}

function attemptsSection(panel) {
  if (!panel.attempts.length) return null;
  return section("Earlier attempts", panel.attempts.map((a) => el("details", {}, el("summary", {}, `${a.name} (${a.files.length} files)`), fileList(a.files))));
}

/** The panel of one stage: a header, what the stage is about, its reports, its files. */
export function stagePanel(panel, stage, runId, detail) {
  const head = el("div", { class: "stage-head" }, el("h2", {}, `${stage.number}. ${stage.title}`), badge(stage.status),
    el("span", {}, ` ${stage.attempts} attempt${stage.attempts === 1 ? "" : "s"} · ${fmtDuration(stage.duration)}`),
    stage.cached_from ? el("span", { class: "muted" }, ` · reused from ${stage.cached_from}`) : null,
    el("p", { class: "summary" }, stage.summary || stage.reason || stage.error || ""));
  const renderers = panel.domain === "tables" ? TABLE_RENDERERS : SPECIFIC;
  const specific = panel.files.length || panel.history ? renderers[panel.stage](panel, detail) : [el("p", { class: "muted" }, "this stage has written no files yet")];
  return el("div", { class: "stage-panel", "data-stage": panel.stage }, head, specific, rawSections(panel),
    section("Files", fileList(panel.files)), attemptsSection(panel));
}
