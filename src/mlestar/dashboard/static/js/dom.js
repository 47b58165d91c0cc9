// DOM helpers. Every string from a run reaches the page through textContent or
// setAttribute, never parsed as markup, so a class named "<script>" stays text.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function applyAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (key === "text") {
      node.textContent = String(value);
    } else if (key === "class") {
      node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return node;
}

/** An HTML element: el("a", {href, class, on: {click}}, "text", child, ...). */
export function el(tag, attrs, ...children) {
  return append(applyAttrs(document.createElement(tag), attrs), children);
}

/** An SVG element, same calling convention as el(). */
export function svg(tag, attrs, ...children) {
  return append(applyAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON endpoint; throws HttpError with the server's message on a non-2xx answer. */
export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const message = body && (body.error || body.detail) ? body.error || JSON.stringify(body.detail) : response.statusText;
    throw new HttpError(response.status, `${response.status}: ${message}`);
  }
  return body;
}

const enc = encodeURIComponent;
export const runPage = (runId) => `/runs/${enc(runId)}`;
export const runApi = (runId, suffix = "") => `/api/runs/${enc(runId)}${suffix}`;
export const fileUrl = (runId, path) => `/runs/${enc(runId)}/files/${path.split("/").map(enc).join("/")}`;

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "-";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function fmtTime(epochSeconds) {
  if (!epochSeconds) return "-";
  const d = new Date(epochSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtBytes(size) {
  if (size === null || size === undefined) return "-";
  const units = ["B", "KB", "MB", "GB"];
  let value = size;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A number for tables: integers as is, others with 4 significant digits. */
export function fmtValue(value) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1e4 || Math.abs(value) < 1e-3 ? value.toExponential(3) : String(Number(value.toPrecision(4)));
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function badge(status) {
  return el("span", { class: ["badge", `status-${String(status).replace(/[^a-z_-]/gi, "")}`] }, String(status));
}

/**
 * A table: columns are {label, cell(row) -> Node|string, class?, sort?}; rows any objects.
 * rowClass(row) may return a class name for the <tr>.
 */
export function table(columns, rows, { rowClass, caption, testid } = {}) {
  const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.class }, c.label))));
  const body = el("tbody", {}, rows.map((row) =>
    el("tr", { class: rowClass ? rowClass(row) : null }, columns.map((c) => el("td", { class: c.class }, c.cell(row))))));
  return el("table", { class: "data", "data-testid": testid }, caption ? el("caption", {}, caption) : null, head, body);
}

/** A two-column key/value table for flat objects. */
export function kvTable(object, { skip = [] } = {}) {
  const rows = Object.entries(object || {}).filter(([k, v]) => !skip.includes(k) && (v === null || typeof v !== "object"));
  const out = table([{ label: "key", cell: (r) => r[0] }, { label: "value", cell: (r) => fmtValue(r[1]) }], rows);
  out.classList.add("kv");
  return out;
}

/** A plot image that links to its full-size file. */
export function figure(image, caption) {
  return el("figure", { class: "plot" },
    el("a", { href: image.url, title: "open full size" }, el("img", { src: image.url, alt: caption || image.path, loading: "lazy" })),
    el("figcaption", {}, caption || image.path));
}

/** The panel's images whose stage-relative path is, or starts with, one of `names`. */
export function imagesNamed(panel, names) {
  return panel.images.filter((i) => names.some((n) => i.path === n || i.path.startsWith(n)));
}

/** A panel CSV ({columns, rows} of strings) as a table, numbers formatted; null without data. */
export function csvTable(data, testid) {
  if (!data) return null;
  const cell = (text) => (text !== undefined && text !== "" && Number.isFinite(Number(text)) ? fmtValue(Number(text)) : text ?? "");
  const columns = data.columns.map((name, index) => ({ label: name, cell: (r) => cell(r[index]) }));
  return table(columns, data.rows, { testid });
}

export function gallery(images) {
  return el("div", { class: "gallery" }, images.map((i) => figure(i)));
}

export function section(title, ...children) {
  return el("section", { class: "panel" }, el("h2", {}, title), ...children);
}

export function errorBox(err) {
  return el("div", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

/** A <code> command with a copy button (the clipboard API needs a secure context; localhost is one). */
export function commandLine(command) {
  const button = el("button", { type: "button", class: "copy", title: "copy to clipboard" }, "copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(command);
      button.textContent = "copied";
    } catch (err) {
      button.textContent = "select and copy";
    }
  });
  return el("div", { class: "command" }, el("code", {}, command), button);
}

/** Call fn() every `ms` while keepGoing() is true; returns a stop function. */
export function poll(fn, ms, keepGoing) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || !keepGoing()) return;
    try {
      await fn();
    } finally {
      if (!stopped) timer = setTimeout(tick, ms);
    }
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
