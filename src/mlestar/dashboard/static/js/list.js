// The runs list: server-side filter, sort and paging (so 500 runs stay fast),
// selection for compare, and a refresh every few seconds while a run is going.

import { badge, clear, el, errorBox, fmtDuration, fmtTime, getJSON, poll, runPage } from "./dom.js";

const COLUMNS = [
  { key: "status", label: "status" },
  { key: "run_id", label: "run" },
  { key: "project", label: "project" },
  { key: "primary_value", label: "primary metric" },
  { key: null, label: "target" },
  { key: "duration", label: "duration" },
  { key: "gates_failed", label: "gates (passed / failed)" },
  { key: null, label: "stages" },
  { key: "created", label: "started" },
];

function readQuery() {
  const p = new URLSearchParams(location.search);
  return {
    q: p.get("q") || "", status: p.get("status") || "", sort: p.get("sort") || "created",
    order: p.get("order") || "desc", offset: Number(p.get("offset") || 0), limit: Number(p.get("limit") || 50),
  };
}

function writeQuery(state) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== "" && v !== null) p.set(k, String(v));
  history.replaceState(null, "", `/?${p}`);
  return p;
}

function primaryCell(run) {
  const p = run.primary;
  if (!p) return "-";
  return el("span", { class: p.met === true ? "met" : p.met === false ? "unmet" : null, title: p.metric },
    p.value_text, el("span", { class: "muted small" }, ` ${p.metric}`));
}

function targetCell(run) {
  const p = run.primary;
  if (!p || p.target_text === null) return el("span", { class: "muted" }, "none");
  return `${p.higher_is_better ? "≥" : "≤"} ${p.target_text}`;
}

function gatesCell(run) {
  if (!run.gates_passed && !run.gates_failed) return el("span", { class: "muted" }, "-");
  return el("span", {}, el("span", { class: "met" }, String(run.gates_passed)), " / ",
    el("span", { class: run.gates_failed ? "unmet" : null }, String(run.gates_failed)),
    run.loopbacks ? el("span", { class: "muted small" }, ` (${run.loopbacks} loop-back${run.loopbacks > 1 ? "s" : ""})`) : null);
}

function stagesCell(run) {
  const now = run.current_stage ? el("span", { class: "muted small" }, ` ${run.current_stage}`) : null;
  return el("span", {}, `${run.stages_done}/${run.stages_total}`, now);
}

function row(run, selected, onToggle) {
  const box = el("input", { type: "checkbox", "aria-label": `select ${run.run_id}`, checked: selected.has(run.run_id) });
  box.addEventListener("change", () => onToggle(run.run_id, box.checked));
  return el("tr", { "data-run": run.run_id },
    el("td", {}, box), el("td", {}, badge(run.status)),
    el("td", {}, el("a", { href: runPage(run.run_id), class: "run-link" }, run.run_id)),
    el("td", {}, run.project), el("td", {}, primaryCell(run)), el("td", {}, targetCell(run)),
    el("td", { class: "num" }, fmtDuration(run.duration)), el("td", {}, gatesCell(run)),
    el("td", {}, stagesCell(run)), el("td", {}, fmtTime(run.created)));
}

function header(state, onSort) {
  return el("thead", {}, el("tr", {}, el("th", {}, ""), COLUMNS.map((c) => {
    if (!c.key) return el("th", {}, c.label);
    const arrow = state.sort === c.key ? (state.order === "desc" ? " ▼" : " ▲") : "";
    const button = el("button", { type: "button", class: "sort", "data-sort": c.key }, c.label + arrow);
    button.addEventListener("click", () => onSort(c.key));
    return el("th", { "aria-sort": state.sort === c.key ? (state.order === "desc" ? "descending" : "ascending") : null }, button);
  })));
}

function controls(state, statuses, actions) {
  const search = el("input", { type: "search", placeholder: "filter by run id or project", value: state.q, "aria-label": "filter text", id: "filter-text" });
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => actions.filter({ q: search.value }), 250);
  });
  const names = Object.keys(statuses).sort();
  const select = el("select", { "aria-label": "filter status", id: "filter-status" },
    el("option", { value: "" }, "all statuses"),
    names.map((s) => el("option", { value: s, selected: s === state.status }, `${s} (${statuses[s]})`)));
  select.addEventListener("change", () => actions.filter({ status: select.value }));
  const compare = el("button", { type: "button", id: "compare-button", disabled: actions.selected.size < 2 }, `compare selected (${actions.selected.size})`);
  compare.addEventListener("click", actions.compare);
  return el("div", { class: "controls" }, search, select, compare);
}

function pager(state, total, go) {
  const first = total ? state.offset + 1 : 0;
  const last = Math.min(state.offset + state.limit, total);
  const prev = el("button", { type: "button", disabled: state.offset === 0 }, "‹ previous");
  const next = el("button", { type: "button", disabled: last >= total }, "next ›");
  prev.addEventListener("click", () => go(Math.max(0, state.offset - state.limit)));
  next.addEventListener("click", () => go(state.offset + state.limit));
  return el("div", { class: "pager" }, prev, el("span", { class: "range", "data-testid": "range" }, `${first}–${last} of ${total}`), next);
}

/** Render the runs list into `root` and keep it current. */
export function runsPage(root) {
  const state = readQuery();
  const selected = new Set();
  let latest = null;
  const render = (data) => {
    const text = JSON.stringify(data);
    if (text === latest && root.querySelector("table")) return;
    latest = text;
    const actions = {
      selected,
      filter: (change) => load({ ...change, offset: 0 }),
      compare: () => {
        location.href = `/compare?${[...selected].map((id) => `run=${encodeURIComponent(id)}`).join("&")}`;
      },
    };
    const onToggle = (id, on) => {
      if (on) selected.add(id); else selected.delete(id);
      const button = document.getElementById("compare-button");
      button.disabled = selected.size < 2;
      button.textContent = `compare selected (${selected.size})`;
    };
    const onSort = (key) => load({ sort: key, order: state.sort === key && state.order === "desc" ? "asc" : "desc", offset: 0 });
    const body = data.runs.length ? data.runs.map((run) => row(run, selected, onToggle))
      : [el("tr", {}, el("td", { colspan: COLUMNS.length + 1, class: "muted" }, "no runs match"))];
    clear(root).append(el("h1", {}, "Runs"), controls(state, data.statuses, actions),
      el("table", { class: "data runs", "data-testid": "runs-table" }, header(state, onSort), el("tbody", {}, body)),
      pager(state, data.total, (offset) => load({ offset })));
  };
  const load = async (change = {}) => {
    Object.assign(state, change);
    try {
      render(await getJSON(`/api/runs?${writeQuery(state)}`));
    } catch (err) {
      clear(root).append(errorBox(err));
    }
  };
  load();
  // New runs appear and running ones advance without a reload; typing in the filter is never interrupted.
  poll(() => (document.activeElement && document.activeElement.id === "filter-text" ? null : load()), 4000, () => true);
}
