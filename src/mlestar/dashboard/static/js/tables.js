// Stage panels of a table run (panel.domain === "tables"): the JSON each table stage
// writes, shown as tables, with its plots. stages.js picks these over the image ones.
// Every renderer tolerates a missing or partial file: a stage that failed half-way
// still shows what it wrote.

import { badge, commandLine, csvTable, el, fmtBytes, fmtDuration, fmtValue, gallery, imagesNamed, kvTable, section, table } from "./dom.js";
import { lineChart } from "./charts.js";

const CHIP_LIMIT = 12; // chips shown before "+N more"
const ROW_LIMIT = 60; // rows of a ranking shown before "+N more"
const BASELINE = "baseline (stage 4 plan)";

const pct = (v) => (v === null || v === undefined ? "-" : `${(v * 100).toFixed(v > 0 && v < 0.001 ? 3 : 1)}%`);
const muted = (text) => el("p", { class: "muted" }, text);
const num = (label, cell) => ({ label, cell, class: "num" });

function chips(items, { total, testid, cls = "chip" } = {}) {
  const list = items || [];
  const more = Math.max((total ?? list.length) - Math.min(list.length, CHIP_LIMIT), 0);
  return el("div", { class: "chips", "data-testid": testid }, list.slice(0, CHIP_LIMIT).map((i) => el("span", { class: cls }, String(i))),
    more ? el("span", { class: "muted" }, `+${more} more`) : null);
}

/** Entries of a {name: number} object, largest first (nulls last), as [name, value] rows. */
function ranked(object) {
  return Object.entries(object || {}).sort((a, b) => (b[1] ?? -Infinity) - (a[1] ?? -Infinity));
}

function rankingTable(object, valueLabel, testid) {
  const rows = ranked(object);
  if (!rows.length) return muted("none recorded");
  const shown = table([{ label: "column", cell: (r) => r[0] }, num(valueLabel, (r) => fmtValue(r[1]))], rows.slice(0, ROW_LIMIT), { testid });
  return [shown, rows.length > ROW_LIMIT ? muted(`+${rows.length - ROW_LIMIT} more (see the raw JSON below)`) : null];
}

function plots(panel, names) {
  const images = names ? imagesNamed(panel, names) : panel.images;
  return images.length ? section("Plots", gallery(images)) : null;
}

// --- 1. situation analysis ----------------------------------------------------------------------

function findingItem(f) {
  return el("li", { class: `finding grade-${String(f.grade).replace(/\W/g, "")}`, "data-check": f.check },
    badge(f.grade), " ", el("strong", {}, f.check), ": ", f.message,
    (f.items || []).length ? chips(f.items, { total: f.count }) : null);
}

function findingsSection(report) {
  const findings = (report.findings || []).map(findingItem);
  return section("Findings", findings.length ? el("ul", { class: "findings", "data-testid": "findings" }, findings) : muted("no findings"));
}

function splitRows(analysis, dataset) {
  if (analysis.splits) return analysis.splits;
  return Object.fromEntries(Object.entries(dataset.splits || {}).map(([name, s]) => [name, s.size]));
}

function classCounts(target) {
  const counts = target.class_counts || {};
  const splits = Object.keys(counts);
  if (!splits.length) return null;
  const rows = (target.class_names || []).map((name, i) => [name, ...splits.map((s) => counts[s][i])]);
  return table([{ label: "class", cell: (r) => r[0] }, ...splits.map((s, j) => num(s, (r) => fmtValue(r[j + 1])))], rows, { testid: "class-counts" });
}

function datasetSection(analysis, dataset) {
  const target = analysis.target || {};
  const rows = splitRows(analysis, dataset);
  const facts = { name: analysis.name || dataset.name, task: analysis.task || dataset.task, target: analysis.target_column || dataset.target,
    ...Object.fromEntries(Object.entries(rows).map(([k, v]) => [`${k} rows`, v])),
    features: analysis.num_features ?? (dataset.features || []).length, "missing cells": pct(analysis.missing_fraction),
    "adversarial ROC AUC (train vs test)": (analysis.adversarial || {}).auc, "imbalance ratio": target.imbalance_ratio };
  const regression = ["min", "max", "mean", "std", "skew"].filter((k) => k in target);
  return section("Dataset", el("div", { "data-testid": "dataset" }, kvTable(facts)),
    el("div", { class: "chips", "data-testid": "class-names" }, (dataset.class_names || target.class_names || []).map((n) => el("span", { class: "chip class-name" }, n))),
    classCounts(target), regression.length ? kvTable(Object.fromEntries(regression.map((k) => [`target ${k}`, target[k]]))) : null,
    el("ul", {}, (dataset.notes || analysis.notes || []).map((n) => el("li", {}, n))));
}

function flagSets(analysis, recs) {
  const names = (list, key = "column") => new Set((list || []).map((x) => (typeof x === "string" ? x : x[key])));
  return { dropped: names(recs.drop_columns), leaks: names((analysis.leakage || {}).leaks),
    drift: new Set(recs.drift_columns || []), high: names(recs.high_cardinality) };
}

function columnFlags(name, c, sets) {
  const flags = [];
  if (c.constant) flags.push("constant");
  else if (c.near_constant) flags.push(`near-constant (${pct(c.top_share)})`);
  if (c.outliers) flags.push(`${c.outliers} outliers`);
  if (sets.leaks.has(name)) flags.push("leakage suspect");
  if (sets.drift.has(name)) flags.push("drift");
  if (sets.high.has(name)) flags.push("high cardinality");
  if (sets.dropped.has(name)) flags.push("drop recommended");
  return flags;
}

function columnsSection(analysis, dataset, recs) {
  const columns = analysis.columns || dataset.columns || {};
  const rows = Object.entries(columns);
  if (!rows.length) return null;
  const sets = flagSets(analysis, recs);
  const mi = (analysis.correlation || {}).scores || {};
  // analysis.json has the missing share; dataset.json (the fallback) only a count
  const missing = (c) => ("missing_count" in c ? pct(c.missing) : fmtValue(c.missing));
  return section("Columns", table([
    { label: "column", cell: (r) => r[0] }, { label: "kind", cell: (r) => r[1].kind }, { label: "role", cell: (r) => r[1].role || "-" },
    num("missing", (r) => missing(r[1])), num("distinct", (r) => fmtValue(r[1].distinct)),
    num(`with target (${(analysis.correlation || {}).unit || "MI"})`, (r) => fmtValue(mi[r[0]])),
    { label: "flags", cell: (r) => chips(columnFlags(r[0], r[1], sets), { cls: "chip flag" }) }], rows, { testid: "columns-table" }));
}

function recommendationsSection(recs) {
  if (!Object.keys(recs).length) return null;
  const drops = recs.drop_columns || [];
  const choices = ["class_weighting", "target_transform"].filter((k) => recs[k]).map((k) => [k.replace("_", " "), recs[k]]);
  return section("Recommendations",
    el("h3", {}, "columns to drop"),
    drops.length ? table([{ label: "column", cell: (d) => d.column }, { label: "reason", cell: (d) => d.reason }], drops, { testid: "drop-columns" }) : muted("none"),
    table([{ label: "topic", cell: (r) => r[0] }, { label: "choice", cell: (r) => fmtValue(r[1].choice) }, { label: "reason", cell: (r) => r[1].reason || "" }],
      choices, { testid: "recommendations" }),
    (recs.high_cardinality || []).length ? el("p", {}, "high-cardinality columns: ", chips(recs.high_cardinality.map((h) => `${h.column} (${h.distinct})`))) : null);
}

function situation(panel) {
  const analysis = panel.json["analysis.json"] || {};
  const report = panel.json["report.json"] || analysis;
  const dataset = panel.json["dataset.json"] || {};
  const recs = panel.json["recommendations.json"] || report.recommendations || {};
  return [findingsSection(report), datasetSection(analysis, dataset), columnsSection(analysis, dataset, recs),
    recommendationsSection(recs), plots(panel)];
}

// --- 2. task definition -------------------------------------------------------------------------

function gatesTable(gates) {
  if (!gates.length) return muted("no gates set");
  return table([{ label: "gate", cell: (g) => g.name || "-" }, { label: "metric", cell: (g) => g.metric },
    { label: "threshold", cell: (g) => `${g.op} ${fmtValue(g.threshold)}${g.unit ? ` ${g.unit}` : ""}` },
    { label: "checked after", cell: (g) => g.stage || "-" }], gates, { testid: "gates" });
}

function taskDefinition(panel) {
  const spec = panel.json["task_spec.json"] || {};
  const metrics = spec.metrics || {};
  const feas = spec.feasibility || {};
  const constraints = Object.fromEntries(Object.entries(spec.constraints || {}).filter(([, v]) => v !== null));
  return [
    section("Task", el("div", { "data-testid": "task" }, kvTable({ task: spec.task, target: spec.target, "primary metric": metrics.primary,
      "secondary metrics": (metrics.secondary || []).join(", ") || "none" }))),
    section("Gates", gatesTable(spec.gates || [])),
    section("Constraints", Object.keys(constraints).length ? kvTable(constraints) : muted("no constraints set")),
    section("Feasibility", el("p", { "data-testid": "feasibility" }, badge(feas.verdict || "unknown"), ` ${feas.reason || ""}`,
      feas.fits !== undefined ? el("span", { class: "muted" }, ` (${feas.fits} fits planned)`) : null),
    el("h3", {}, "probe fit"), el("div", { "data-testid": "probe" }, kvTable(spec.probe || {}))),
  ];
}

// --- 3. action planning -------------------------------------------------------------------------

function planning(panel) {
  const plan = panel.json["plan.json"] || {};
  const settings = ["learner", "task", "target", "class_weight", "target_transform", "cv_folds", "early_stopping_rounds", "seed"];
  const columns = plan.columns || [];
  const actions = {};
  for (const c of columns) actions[c.action] = (actions[c.action] || 0) + 1;
  return [
    section("Plan", el("div", { "data-testid": "plan-settings" }, kvTable(Object.fromEntries(settings.filter((k) => k in plan).map((k) => [k, plan[k]]))))),
    section("Learner parameters", Object.keys(plan.params || {}).length ? el("div", { "data-testid": "plan-params" }, kvTable(plan.params)) : muted("the learner's defaults")),
    section("Decisions", table([{ label: "decision", cell: (r) => r[0] }, { label: "why", cell: (r) => r[1] }], Object.entries(plan.reasons || {}), { testid: "plan-decisions" })),
    section("Columns", chips(Object.entries(actions).map(([a, n]) => `${a}: ${n}`)),
      table([{ label: "column", cell: (c) => c.column }, { label: "kind", cell: (c) => c.kind }, { label: "action", cell: (c) => c.action },
        { label: "reason", cell: (c) => c.reason || "" }], columns, { testid: "plan-columns", rowClass: (c) => (c.action === "drop" ? "dropped" : null) })),
  ];
}

// --- 4. implementation --------------------------------------------------------------------------

function cvSection(cv) {
  if (!cv || !(cv.folds || []).length) return section("Cross-validation", muted("no cross-validation recorded"));
  return section("Cross-validation",
    el("p", { "data-testid": "cv-summary" }, `${cv.score}: ${fmtValue(cv.mean)} ± ${fmtValue(cv.std)} over ${cv.folds.length} folds`),
    table([num("fold", (r) => String(r[1])), num(cv.score, (r) => fmtValue(r[0]))], cv.folds.map((s, i) => [s, i]), { testid: "cv-folds" }));
}

function curveCharts(curve) {
  const charts = Object.entries(curve || {}).map(([metric, sides]) => lineChart(
    Object.entries(sides || {}).map(([side, values]) => ({ name: `${side} ${metric}`, points: (values || []).map((v, i) => [i + 1, v]) })),
    { title: metric, xLabel: "boosting round", yFormat: (v) => v.toPrecision(2), tipFormat: (v) => v.toPrecision(4) }));
  // "dense": hundreds of rounds per line, so no dot per point, and charts kept to a readable width
  return charts.length ? el("div", { class: "charts dense", "data-testid": "learning-curve" }, charts) : null;
}

function implementation(panel) {
  const t = panel.json["training.json"] || {};
  const facts = { learner: t.learner, "best iteration": t.best_iteration, "train rows": t.train_rows, "validation rows": t.val_rows,
    "final fit": fmtDuration(t.fit_seconds), "stage time": fmtDuration(t.seconds) };
  return [
    section("Training", el("div", { "data-testid": "training" }, kvTable(facts))),
    section("Validation scores", el("div", { "data-testid": "val-scores" }, kvTable(t.val_scores || {}))),
    cvSection(t.cross_validation),
    section("Learning curve", curveCharts(t.curve), gallery(imagesNamed(panel, ["learning_curve"]))),
    section("Permutation importance (validation)", el("p", { class: "muted" }, "drop in the primary score when a column is shuffled"),
      rankingTable(panel.json["feature_importance.json"], "importance", "permutation-importance"), gallery(imagesNamed(panel, ["feature_importance"]))),
  ];
}

// --- 5. evaluation ------------------------------------------------------------------------------

function thresholdSection(th) {
  if (!th) return null;
  const at = th["test_at_0.5"] || {};
  const chosen = th.test_at_chosen || {};
  return section("Decision threshold", el("p", { "data-testid": "threshold-choice" }, `chosen ${fmtValue(th.chosen)} (F1-optimal on validation ${fmtValue(th.f1_optimal)}): ${th.reason || ""}`),
    table([{ label: "test metric", cell: (k) => k }, num("at 0.5", (k) => fmtValue(at[k])), num(`at ${fmtValue(th.chosen)}`, (k) => fmtValue(chosen[k]))],
      Object.keys(at), { testid: "threshold" }));
}

function perClassSection(report, matrix) {
  if (!report) return null;
  const rows = Object.entries(report).filter(([, v]) => v && typeof v === "object");
  const cm = matrix ? table([{ label: "true \\ predicted", cell: (r) => r[0] }, ...matrix.labels.map((l, j) => num(l, (r) => fmtValue(r[1][j])))],
    matrix.labels.map((l, i) => [l, matrix.matrix[i]]), { testid: "confusion" }) : null;
  return section("Per-class results", table([{ label: "class", cell: (r) => r[0] }, num("precision", (r) => fmtValue(r[1].precision)),
    num("recall", (r) => fmtValue(r[1].recall)), num("F1", (r) => fmtValue(r[1]["f1-score"])), num("support", (r) => fmtValue(r[1].support))],
  rows, { testid: "per-class" }), cm ? [el("h3", {}, "confusion matrix"), cm] : null);
}

function bucketSection(buckets) {
  if (!buckets) return null;
  return section("Error by target bucket", table([num("bucket", (b) => String(b.bucket)), { label: "true value", cell: (b) => `${fmtValue(b.low)} – ${fmtValue(b.high)}` },
    num("rows", (b) => fmtValue(b.count)), num("MAE", (b) => fmtValue(b.mae)), num("RMSE", (b) => fmtValue(b.rmse))], buckets, { testid: "target-buckets" }));
}

function categorySection(byCategory, task, notes) {
  const entries = Object.entries(byCategory || {});
  const label = task === "regression" ? "mean |error|" : "error rate";
  const tables = entries.map(([column, rows]) => [el("h3", {}, column), table([{ label: "value", cell: (r) => r.value }, num("rows", (r) => fmtValue(r.count)),
    num(label, (r) => (task === "regression" ? fmtValue(r.error) : pct(r.error)))], rows)]);
  const why = (notes || []).filter((n) => n.includes("categor"));
  return section("Error by category", entries.length ? el("div", { "data-testid": "error-by-category" }, tables) : muted(why.join("; ") || "no categorical input columns"));
}

function efficiencyTable(e) {
  const throughput = e.throughput === undefined ? undefined : `${fmtValue(Math.round(e.throughput))} rows/s`;
  return el("div", { "data-testid": "efficiency" }, kvTable({ "latency p50 (one row)": fmtDuration(e.latency_p50), "latency p95 (one row)": fmtDuration(e.latency_p95),
    throughput, "model size": fmtBytes(e.model_size), "peak memory": fmtBytes(e.peak_memory) }));
}

function notesSection(notes) {
  return notes.length ? section("Notes", el("ul", {}, notes.map((n) => el("li", {}, n)))) : null;
}

function evaluation(panel) {
  const r = panel.json["evaluation.json"] || panel.json["report.json"] || {};
  const shap = panel.json["shap_importance.json"] || r.shap || {};
  const calibration = r.calibration && r.calibration.ece !== undefined ? el("p", {}, `expected calibration error ${fmtValue(r.calibration.ece)}`) : null;
  return [
    section("Test metrics", el("p", { class: "muted" }, `${r.learner || "?"} on ${fmtValue(r.n_test)} test rows (${r.task || "?"})`),
      el("div", { "data-testid": "test-metrics" }, kvTable(r.scores || {})), calibration),
    thresholdSection(r.threshold), perClassSection(r.classification_report, r.confusion_matrix), bucketSection(r.target_buckets),
    categorySection(panel.json["error_by_category.json"] || r.error_by_category, r.task, r.notes),
    section("SHAP importance", el("p", { class: "muted" }, `mean |SHAP| over ${fmtValue(shap.rows)} rows, ${shap.explainer || "?"} explainer${shap.note ? `: ${shap.note}` : ""}`),
      rankingTable(shap.mean_abs, "mean |SHAP|", "shap-importance")),
    r.permutation_importance ? section("Permutation importance", rankingTable(r.permutation_importance, "importance", "eval-permutation-importance")) : null,
    section("Efficiency", efficiencyTable(r.efficiency || {})),
    notesSection((r.notes || []).filter((n) => !n.includes("categor"))), // category notes: shown under "Error by category"
    plots(panel),
  ];
}

// --- 6. refinement ------------------------------------------------------------------------------

function candidatesTable(r) {
  if (!(r.candidates || []).length) return muted("no candidates compared");
  return table([{ label: "candidate", cell: (c) => [c.name, c.name === r.adopted ? [" ", badge("adopted")] : null] },
    num(`mean ${r.score || ""}`, (c) => fmtValue(c.mean)), num("std", (c) => fmtValue(c.std)),
    { label: "per seed", cell: (c) => (c.scores || []).map((s) => fmtValue(s)).join(", ") }], r.candidates,
  { testid: "candidates", rowClass: (c) => (c.name === r.adopted ? "adopted" : null) });
}

function ablationsTable(ablations, score) {
  if (!(ablations || []).length) return muted("no column groups to ablate");
  return table([{ label: "dropped group", cell: (a) => a.group }, { label: "columns", cell: (a) => chips(a.columns) },
    num(`val ${score || "score"}`, (a) => fmtValue(a.score)), num("change", (a) => (a.change > 0 ? "+" : "") + fmtValue(a.change))], ablations, { testid: "ablations" });
}

function refinement(panel, detail) {
  const r = panel.json["refinement.json"] || {};
  const search = r.search || {};
  const optuna = ((detail && detail.tools) || []).find((t) => t.name === "optuna-dashboard");
  return [
    section("Decision", el("p", { "data-testid": "adopted" }, "adopted ", el("strong", {}, r.adopted || "?"), `: ${r.reason || ""}`),
      kvTable({ score: r.score, seeds: (r.seeds || []).join(", "), "baseline mean": r.baseline_mean, "seed-to-seed noise": r.noise })),
    section("Candidates (validation, over seeds)", candidatesTable(r)),
    section("Ablations", ablationsTable(r.ablations, r.score)),
    section("Search", kvTable({ completed: search.completed, pruned: search.pruned, "best value": search.best_value, time: fmtDuration(search.seconds) }),
      Object.keys(search.best_params || {}).length ? [el("h3", {}, "best parameters"), kvTable(search.best_params)] : null),
    section("Trials", csvTable(panel.tables["trials.csv"], "trials") || muted("no trials file")),
    plots(panel),
    optuna ? section("optuna-dashboard", commandLine(optuna.command)) : null,
  ];
}

// --- 7. deployment ------------------------------------------------------------------------------

function paritySection(d, parityFile) {
  const p = d.parity;
  if (!p) return section("Parity", el("p", { "data-testid": "parity-none" }, `no ONNX graph: ${(parityFile || {}).reason || "not exported"}; the runtime is ${d.runtime || "?"}`));
  const row = { ...p, tolerance: `${fmtValue(p.tolerance)}${p.relative ? " (relative)" : ""}` };
  return section("Parity (ONNX against the fitted model)", table([num("max |diff|", (x) => fmtValue(x.max_abs_diff)), { label: "tolerance", cell: (x) => x.tolerance },
    num("top-1 agreement", (x) => fmtValue(x.top1_agreement)), num("needed", (x) => fmtValue(x.min_top1_agreement)), num("rows", (x) => fmtValue(x.rows)),
    num("worst row", (x) => fmtValue(x.worst_row)), { label: "verdict", cell: (x) => badge(x.passed ? "passed" : "failed") }], [row], { testid: "parity" }),
  el("p", {}, "served runtime: ", el("strong", { "data-testid": "runtime" }, d.runtime || "?")));
}

function benchmarkSection(d) {
  const b = d.benchmark || {};
  const latency = b.latency_s || {};
  const rows = [["latency p50 (one row)", fmtDuration(latency.p50)], ["latency p95 (one row)", fmtDuration(latency.p95)],
    ...Object.entries(b.throughput || {}).map(([batch, v]) => [`throughput, batches of ${batch}`, `${fmtValue(Math.round(v))} rows/s`])];
  return section("Benchmark", table([{ label: "measure", cell: (r) => r[0] }, num("value", (r) => r[1])], rows, { testid: "benchmark" }),
    b.measured ? el("p", { class: "muted" }, b.measured) : null);
}

function bundleSection(panel, d) {
  const bundle = panel.files.filter((f) => f.path.includes("/bundle/"));
  return section("Bundle", el("p", {}, `${fmtBytes(d.bundle_size_bytes)} in ${d.bundle || "bundle"}/`),
    table([{ label: "file", cell: (f) => el("a", { href: f.url }, f.path.split("/bundle/")[1]) }, num("size", (f) => fmtBytes(f.size))], bundle, { testid: "bundle" }),
    d.serve ? [el("h3", {}, "serve it"), commandLine(d.serve)] : null);
}

function domainOf(c) {
  if (c.categories) return chips(c.categories);
  return c.range ? `${fmtValue(c.range[0])} – ${fmtValue(c.range[1])}` : "-";
}

function schemaSection(schema) {
  const columns = schema.columns || [];
  if (!columns.length) return null;
  return section("Input schema", el("p", { class: "muted" }, `one JSON object per row; target ${schema.target || "?"} (${schema.task || "?"})${schema.threshold !== undefined && schema.threshold !== null ? `, threshold ${fmtValue(schema.threshold)}` : ""}`),
    table([{ label: "column", cell: (c) => c.name }, { label: "kind", cell: (c) => c.kind }, { label: "type", cell: (c) => c.dtype || "-" },
      { label: "nullable", cell: (c) => (c.nullable ? "yes" : "no") }, { label: "range or categories", cell: domainOf }], columns, { testid: "input-schema" }));
}

function psiLevel(v) {
  if (v === null || v === undefined) return "no-rows";
  return v < 0.1 ? "stable" : v < 0.25 ? "moderate" : "large";
}

function driftSection(drift) {
  const rows = ranked(drift.psi);
  if (!rows.length) return null;
  return section("Drift reference (PSI)", el("p", { class: "muted" }, `${drift.compared || "test"} against the ${drift.reference || "training split"}; below 0.1 stable, 0.1–0.25 moderate, above 0.25 large`),
    table([{ label: "column", cell: (r) => r[0] }, num("PSI", (r) => fmtValue(r[1])), { label: "shift", cell: (r) => badge(psiLevel(r[1])) }], rows, { testid: "drift" }));
}

function deployment(panel) {
  const d = panel.json["deployment.json"] || {};
  return [paritySection(d, panel.json["parity.json"]), benchmarkSection(d), bundleSection(panel, d),
    schemaSection(panel.json["bundle/schema.json"] || {}), driftSection(panel.json["drift.json"] || {}), plots(panel)];
}

/** One renderer per stage name: (panel, detail) -> nodes. */
export const TABLE_RENDERERS = {
  situation_analysis: situation,
  task_definition: taskDefinition,
  action_planning: planning,
  implementation,
  evaluation,
  refinement,
  deployment,
};
