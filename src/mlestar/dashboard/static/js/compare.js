// Runs side by side: metrics (best value marked) and config values, differences highlighted.

import { badge, clear, el, errorBox, fmtDuration, getJSON, runPage, section } from "./dom.js";

function runHeads(runs) {
  return runs.map((r) => el("th", {}, el("a", { href: runPage(r.run_id) }, r.run_id), el("div", {}, badge(r.status))));
}

function summaryTable(runs) {
  const rows = [
    ["project", (r) => r.project],
    ["primary metric", (r) => (r.primary ? `${r.primary.metric} ${r.primary.value_text}` : "-")],
    ["duration", (r) => fmtDuration(r.duration)],
    ["gates passed / failed", (r) => `${r.gates_passed} / ${r.gates_failed}`],
    ["loop-backs", (r) => String(r.loopbacks)],
  ];
  return el("table", { class: "data compare" }, el("thead", {}, el("tr", {}, el("th", {}, ""), runHeads(runs))),
    el("tbody", {}, rows.map(([label, cell]) => el("tr", {}, el("th", {}, label), runs.map((r) => el("td", {}, cell(r)))))));
}

function metricTable(runs, metrics) {
  return el("table", { class: "data compare", "data-testid": "compare-metrics" },
    el("thead", {}, el("tr", {}, el("th", {}, "metric"), runHeads(runs))),
    el("tbody", {}, metrics.map((m) => el("tr", { class: m.differs ? "differs" : "same", "data-metric": m.metric },
      el("th", {}, m.metric, m.higher_is_better === null ? null : el("span", { class: "muted small" }, m.higher_is_better ? " ↑" : " ↓")),
      m.texts.map((text, i) => el("td", { class: ["num", m.best.includes(i) ? "best" : null] }, text))))));
}

function configTable(runs, config) {
  return el("table", { class: "data compare", "data-testid": "compare-config" },
    el("thead", {}, el("tr", {}, el("th", {}, "config key"), runHeads(runs))),
    el("tbody", {}, config.map((c) => el("tr", { class: c.differs ? "differs" : "same", "data-key": c.key },
      el("th", { class: "mono" }, c.key), c.values.map((v) => el("td", { class: "mono" }, v === null ? "(absent)" : v))))));
}

function onlyDifferences(target) {
  const box = el("input", { type: "checkbox", id: "only-differences", checked: true });
  box.addEventListener("change", () => target.classList.toggle("only-differences", box.checked));
  target.classList.add("only-differences");
  return el("label", {}, box, " show only differences");
}

/** Render the compare page for the ?run= ids of the URL. */
export async function comparePage(root) {
  const ids = new URLSearchParams(location.search).getAll("run");
  document.title = `compare ${ids.length} runs · mlestar`;
  try {
    const data = await getJSON(`/api/compare?${ids.map((id) => `run=${encodeURIComponent(id)}`).join("&")}`);
    const body = el("div", {}, section("Runs", summaryTable(data.runs)), section("Metrics", metricTable(data.runs, data.metrics)),
      section("Config", configTable(data.runs, data.config)));
    const differing = data.config.filter((c) => c.differs).length;
    clear(root).append(el("h1", {}, `Compare ${data.runs.length} runs`),
      el("p", { class: "muted" }, `${differing} config value${differing === 1 ? "" : "s"} and ${data.metrics.filter((m) => m.differs).length} metrics differ (highlighted)`),
      onlyDifferences(body), body);
  } catch (err) {
    clear(root).append(el("h1", {}, "Compare"), errorBox(err), el("p", {}, el("a", { href: "/" }, "back to the runs list to pick two or more runs")));
  }
}
