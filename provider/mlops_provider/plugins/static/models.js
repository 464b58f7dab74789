// The Models page (list and model page) of airflow-provider-mlops: plain JS, no library, no build step.
// Every string from the API reaches the DOM as text (textContent, text nodes, SVG <text>/<title>);
// a URL is used only if it is a path on this server ("/...", not "//") or an http(s) URL.
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const SCRIPT_PATH = new URL(document.currentScript.src).pathname;
  const BASE = SCRIPT_PATH.replace(/\/static\/models\.js$/, ""); // where the plugin app is mounted
  const AIRFLOW_ROOT = BASE.replace(/\/[^/]*$/, ""); // the Airflow UI (the plugin sits at its root)
  const HEATMAP_RUNS = 20;
  const TABLE_ROWS = 20;
  const PROBLEM_LABELS = {
    refused: "gate refused",
    drift: "drift",
    failed_run: "retrain failed",
    pending_approval: "approval pending",
    degraded: "live performance degraded",
  };

  // ---------- DOM helpers (text only) ----------

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svgTitle(text) {
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = text;
    return title;
  }

  function withTitle(node, text) {
    if (text !== null && text !== undefined && text !== "") node.title = String(text);
    return node;
  }

  // ---------- URLs ----------

  function safeUrl(url) {
    if (typeof url !== "string" || url === "" || /[\u0000-\u0020\u007f\\]/.test(url)) return null;
    if (url.startsWith("/") && !url.startsWith("//")) return url;
    if (/^https?:\/\//i.test(url)) {
      try {
        const parsed = new URL(url);
        return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
      } catch (err) {
        return null;
      }
    }
    return null;
  }

  // A link to ``url`` with ``text``; an unsafe or missing URL shows as text (or nothing).
  // ``top``: open it in the top window (Airflow's UI), not in the iframe this page runs in.
  function link(url, text, options) {
    const opts = options || {};
    const href = safeUrl(url);
    const label = text === undefined || text === null ? String(url ?? "") : String(text);
    if (href === null) {
      if (url === null || url === undefined || url === "") return opts.fallback ?? null;
      return el("span", "unsafe-url", label);
    }
    const a = el("a", opts.className || "", label);
    a.href = href;
    if (opts.top) {
      a.target = "_top";
      a.addEventListener("click", (event) => openInTop(event, a.href));
    }
    if (/^https?:/i.test(href) && new URL(href).origin !== location.origin) {
      a.rel = "noopener noreferrer";
    }
    return a;
  }

  // The Airflow UI shows this page in a sandboxed iframe without "allow-top-navigation", so a
  // target=_top link is blocked there. The frame is same-origin: navigate the top window through a
  // link in its own document (a user's click), which its router or the browser then follows.
  function openInTop(event, href) {
    if (window.top === window.self || event.defaultPrevented) return;
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    let topDocument;
    try {
      topDocument = window.top.document;
    } catch (err) {
      return; // another origin frames us: leave the link to the browser
    }
    event.preventDefault();
    const sameOrigin = new URL(href, location.href).origin === location.origin;
    const anchor = topDocument.createElement("a");
    anchor.href = href;
    anchor.target = sameOrigin ? "_self" : "_blank";
    if (!sameOrigin) anchor.rel = "noopener noreferrer";
    anchor.style.display = "none";
    topDocument.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
  }

  function modelPageUrl(name) {
    return `${BASE}/models/${encodeURIComponent(name)}`;
  }

  function dagUrl(dagId) {
    return dagId ? `${AIRFLOW_ROOT}/dags/${encodeURIComponent(dagId)}` : null;
  }

  function dagRunUrl(dagId, runId) {
    if (!dagId || !runId) return null;
    return `${AIRFLOW_ROOT}/dags/${encodeURIComponent(dagId)}/runs/${encodeURIComponent(runId)}`;
  }

  // ---------- formatting ----------

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function formatTime(value) {
    if (!value) return "—";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return (
      `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
      `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())} UTC`
    );
  }

  function time(value) {
    const node = el("time", "", formatTime(value));
    if (value) {
      node.dateTime = String(value);
      node.title = String(value);
    }
    return node;
  }

  function formatNumber(value, digits) {
    if (typeof value !== "number" || !Number.isFinite(value)) return value === null || value === undefined ? "—" : String(value);
    if (Number.isInteger(value)) return String(value);
    return value.toFixed(digits ?? 4);
  }

  function formatSigned(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return formatNumber(value);
    return (value > 0 ? "+" : "") + formatNumber(value);
  }

  function formatShare(value) {
    return typeof value === "number" && Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : "—";
  }

  function badge(text, kind) {
    return el("span", `badge badge-${kind}`, text);
  }

  function decisionBadge(decision) {
    if (!decision) return badge("no decision", "muted");
    const kind = { promoted: "ok", refused: "bad", pending: "warn", rolled_back: "warn" }[decision] || "muted";
    const mark = { promoted: "✓ ", refused: "✗ ", pending: "… " }[decision] || "";
    return badge(mark + String(decision), kind);
  }

  function stateBadge(state) {
    if (!state) return badge("—", "muted");
    const kind = { success: "ok", failed: "bad", running: "warn", queued: "warn" }[state] || "muted";
    return badge(String(state), kind);
  }

  function driftBadge(status) {
    if (!status) return badge("—", "muted");
    const kind = { drift: "bad", no_drift: "ok" }[status] || "muted";
    return badge(String(status).replace(/_/g, " "), kind);
  }

  function gateText(gate) {
    if (!gate || typeof gate !== "object") return "";
    const parts = [gate.gate, gate.metric].filter((p) => p !== null && p !== undefined && p !== "");
    let text = parts.map(String).join(" · ");
    if (gate.value !== undefined && gate.value !== null) text += ` = ${formatNumber(gate.value)}`;
    if (gate.threshold !== undefined && gate.threshold !== null) text += ` (limit ${formatNumber(gate.threshold)})`;
    return text;
  }

  function keyValues(map, format) {
    if (!map || typeof map !== "object" || Object.keys(map).length === 0) return "—";
    const list = el("dl", "kv");
    for (const [key, value] of Object.entries(map)) {
      append(list, [el("dt", "", key), el("dd", "", (format || formatNumber)(value))]);
    }
    return list;
  }

  // ---------- fetching ----------

  class PageError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const STATUS_MESSAGES = {
    401: "You are not logged in, or your session has expired. Log in to Airflow again, then reload this page.",
    403: "You are not allowed to see this. Ask an Airflow admin for read access to the model's DAGs.",
    404: "No such model, or you are not allowed to see it.",
    503: "MLflow cannot be reached right now, so the models cannot be read. Try again shortly; the API server's log says why.",
  };

  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (err) {
      throw new PageError(0, "The Airflow API server could not be reached. Check that it runs, then reload.");
    }
    if (!response.ok) {
      const message =
        STATUS_MESSAGES[response.status] ||
        `The server could not answer (HTTP ${response.status}). Try again; the API server's log has the details.`;
      throw new PageError(response.status, message);
    }
    try {
      return await response.json();
    } catch (err) {
      throw new PageError(response.status, "The server's answer was not valid JSON.");
    }
  }

  function showError(root, error) {
    const status = error instanceof PageError ? error.status : 0;
    const box = el("div", "error", el("h2", "", status ? `Error ${status}` : "Error"), el("p", "", error.message));
    box.setAttribute("role", "alert");
    box.dataset.status = String(status);
    root.replaceChildren(el("p", "", link(`${BASE}/models`, "← All models")), box);
  }

  // ---------- sortable table ----------

  // columns: [{label, key(row) -> comparable|null, cell(row) -> node|string, className?}]
  function sortableTable(columns, rows, options) {
    const opts = options || {};
    const table = el("table", `data sortable ${opts.className || ""}`);
    const head = el("tr");
    const body = el("tbody");
    let sortIndex = opts.sortIndex ?? 0;
    let ascending = opts.ascending ?? true;

    function render() {
      const column = columns[sortIndex];
      const sorted = rows.slice().sort((a, b) => compare(column.key(a), column.key(b), ascending));
      body.replaceChildren(
        ...sorted.map((row) => {
          const tr = el("tr", opts.rowClass ? opts.rowClass(row) : "");
          for (const col of columns) tr.appendChild(el("td", col.className || "", col.cell(row)));
          return tr;
        }),
      );
      Array.from(head.children).forEach((th, i) => {
        th.setAttribute("aria-sort", i === sortIndex ? (ascending ? "ascending" : "descending") : "none");
        th.querySelector(".arrow").textContent = i === sortIndex ? (ascending ? " ▲" : " ▼") : "";
      });
    }

    columns.forEach((col, i) => {
      const button = el("button", "sort", col.label, el("span", "arrow"));
      button.type = "button";
      button.addEventListener("click", () => {
        ascending = i === sortIndex ? !ascending : true;
        sortIndex = i;
        render();
      });
      const th = el("th", "", button);
      th.scope = "col";
      head.appendChild(th);
    });
    append(table, [el("thead", "", head), body]);
    render();
    return table;
  }

  function compare(a, b, ascending) {
    const missingA = a === null || a === undefined || a === "";
    const missingB = b === null || b === undefined || b === "";
    if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1; // missing last
    let result;
    if (typeof a === "number" && typeof b === "number") result = a - b;
    else result = String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" });
    return ascending ? result : -result;
  }

  function plainTable(headers, rows, className) {
    const table = el("table", `data ${className || ""}`);
    const head = el("tr", "", headers.map((h) => {
      const th = el("th", "", h);
      th.scope = "col";
      return th;
    }));
    const body = el("tbody", "", rows.map((cells) => el("tr", "", cells.map((c) => el("td", "", c)))));
    return append(table, [el("thead", "", head), body]);
  }

  function scroller(node) {
    return el("div", "scroll", node);
  }

  function section(title, ...children) {
    const node = el("section", "panel", el("h2", "", title), ...children);
    node.dataset.section = title.toLowerCase().replace(/[^a-z]+/g, "-");
    return node;
  }

  function empty(text) {
    return el("p", "empty", text);
  }

  // ---------- the list ----------

  function problemCell(model) {
    const problems = Array.isArray(model.problems) ? model.problems : [];
    if (problems.length === 0) return badge("OK", "ok");
    const labels = problems.map((p) => PROBLEM_LABELS[p] || String(p));
    return el("span", "problems", badge(`⚠ ${labels.length} ${labels.length === 1 ? "problem" : "problems"}`, "bad"), " ", labels.join(", "));
  }

  function retrainCell(run) {
    if (!run) return "—";
    const who = run.triggered_by ? ` by ${run.triggered_by}` : "";
    return el("span", "stack",
      el("span", "", stateBadge(run.state), " ", link(dagRunUrl(run.dag_id, run.dag_run_id), "run", { top: true })),
      el("span", "", `${run.cause || "unknown cause"}${who}`),
      time(run.start_date || run.logical_date));
  }

  function decisionCell(decision) {
    if (!decision) return "—";
    const first = decision.first_failing_gate;
    return el("span", "stack",
      el("span", "", decisionBadge(decision.decision), ` v${decision.version ?? "?"}`),
      first ? el("span", "gate-failed", `first failing gate: ${gateText(first)}`) : null,
      decision.reason ? el("span", "reason", String(decision.reason)) : null);
  }

  function driftCell(drift) {
    if (!drift) return "—";
    return el("span", "stack",
      el("span", "", driftBadge(drift.status), " ", formatShare(drift.drift_share)),
      el("span", "muted", `threshold ${formatShare(drift.threshold)}`),
      time(drift.at));
  }

  function liveCell(live) {
    if (live === null || live === undefined) return "—";
    if (typeof live !== "object") return formatNumber(live);
    const name = live.metric ?? live.name ?? "";
    const value = live.value ?? live.live ?? null;
    return el("span", "", `${name} ${formatNumber(value)}`.trim(), live.status ? el("span", "muted", ` (${live.status})`) : null);
  }

  function renderList(root, data) {
    const models = Array.isArray(data.models) ? data.models : [];
    const columns = [
      { label: "Model", key: (m) => m.name, cell: (m) => el("span", "stack", link(modelPageUrl(String(m.name)), String(m.name), { className: "model-link" }), m.configured === false ? el("span", "muted", "no config") : null) },
      { label: "Status", key: (m) => (Array.isArray(m.problems) ? m.problems.length : 0), cell: problemCell },
      { label: "Champion", key: (m) => (m.champion ? Number(m.champion.version) : null), cell: (m) => (m.champion ? el("span", "stack", el("strong", "", `v${m.champion.version}`), el("span", "", "since ", time(m.champion.since))) : "none") },
      { label: "Last retrain", key: (m) => m.last_retrain?.start_date || m.last_retrain?.logical_date, cell: (m) => retrainCell(m.last_retrain) },
      { label: "Last gate decision", key: (m) => m.last_decision?.decided_at, cell: (m) => decisionCell(m.last_decision) },
      { label: "Drift", key: (m) => m.last_drift?.drift_share, cell: (m) => driftCell(m.last_drift) },
      { label: "Live metric", key: (m) => (typeof m.live_metric === "number" ? m.live_metric : m.live_metric?.value), cell: (m) => liveCell(m.live_metric) },
      { label: "Pending approvals", key: (m) => m.pending_approvals ?? 0, cell: (m) => (m.pending_approvals ? badge(String(m.pending_approvals), "warn") : "0") },
    ];
    const body = models.length
      ? scroller(sortableTable(columns, models, { className: "models", rowClass: (m) => (m.problems && m.problems.length ? "problem" : "") }))
      : empty("No models yet. Models appear here once a config defines them or an operator registers one.");
    root.replaceChildren(
      el("header", "page-head", el("h1", "", "Models"), el("p", "muted", `${models.length} model${models.length === 1 ? "" : "s"} · updated `, time(data.generated_at))),
      body,
    );
  }

  // ---------- charts (inline SVG) ----------

  const CHART = { width: 560, height: 230, left: 52, right: 14, top: 14, bottom: 40 };

  function toTime(value) {
    const t = value ? new Date(value).getTime() : NaN;
    return Number.isNaN(t) ? null : t;
  }

  function scale(domain, range) {
    const [d0, d1] = domain;
    const [r0, r1] = range;
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function chartFrame(label, extraClass) {
    const root = svg("svg", {
      viewBox: `0 0 ${CHART.width} ${CHART.height}`,
      class: `chart ${extraClass || ""}`,
      role: "img",
      "aria-label": label,
      preserveAspectRatio: "xMidYMid meet",
    });
    root.appendChild(svgTitle(label));
    return root;
  }

  function yAxis(root, y, ticks, format) {
    const x0 = CHART.left;
    const x1 = CHART.width - CHART.right;
    for (const tick of ticks) {
      const py = y(tick);
      root.appendChild(svg("line", { x1: x0, x2: x1, y1: py, y2: py, class: "grid" }));
      root.appendChild(svg("text", { x: x0 - 6, y: py + 4, class: "tick", "text-anchor": "end" }, format(tick)));
    }
  }

  function xLabels(root, labels, y, minGap) {
    // labels: [{x, text}]; each drawn only if it keeps ``minGap`` from the one before (the last wins)
    const gap = minGap ?? 72;
    const drawn = [];
    labels.forEach((label, i) => {
      const last = i === labels.length - 1;
      if (drawn.length && label.x - drawn[drawn.length - 1].x < gap) {
        if (!last) return;
        drawn.pop();
      }
      drawn.push(label);
    });
    const width = Number(root.getAttribute("viewBox").split(" ")[2]);
    for (const label of drawn) {
      const anchor = label.x > width - 40 ? "end" : label.x < CHART.left + 20 ? "start" : "middle";
      const x = anchor === "end" ? Math.min(label.x + 8, width - 2) : anchor === "start" ? Math.max(label.x - 8, 2) : label.x;
      root.appendChild(svg("text", { x, y: y ?? CHART.height - CHART.bottom + 16, class: "tick", "text-anchor": anchor }, label.text));
    }
  }

  function niceTicks(min, max, count) {
    if (min === max) return [min];
    const raw = (max - min) / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    return ticks;
  }

  function shortDate(ms) {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  }

  function xByTimeOrIndex(items, timeOf) {
    const times = items.map(timeOf);
    const byTime = times.every((t) => t !== null) && new Set(times).size > 1;
    const range = [CHART.left + 8, CHART.width - CHART.right - 8];
    if (byTime) {
      const x = scale([Math.min(...times), Math.max(...times)], range);
      return { at: (i) => x(times[i]), label: (i) => shortDate(times[i]) };
    }
    const x = scale([0, Math.max(1, items.length - 1)], range);
    return { at: (i) => (items.length === 1 ? (range[0] + range[1]) / 2 : x(i)), label: (i) => (times[i] !== null ? shortDate(times[i]) : `#${i + 1}`) };
  }

  // Checks in the order of the data they checked (a backfill runs late for early dates); stable otherwise.
  function byDataTime(items) {
    return items
      .map((item, i) => ({ item, i, t: toTime(item.logical_date || item.at) }))
      .sort((a, b) => (a.t !== null && b.t !== null && a.t !== b.t ? a.t - b.t : a.i - b.i))
      .map(({ item }) => item);
  }

  function driftShareChart(drift) {
    const runs = byDataTime((Array.isArray(drift) ? drift : []).filter((d) => typeof d.drift_share === "number" && Number.isFinite(d.drift_share)));
    if (!runs.length) return empty("No drift checks recorded yet.");
    const root = chartFrame("Drift share per drift check, with the threshold", "drift-share");
    const x = xByTimeOrIndex(runs, (d) => toTime(d.logical_date || d.at));
    const y = scale([0, 1], [CHART.height - CHART.bottom, CHART.top]);
    yAxis(root, y, [0, 0.25, 0.5, 0.75, 1], (t) => `${Math.round(t * 100)}%`);
    const thresholds = runs.map((d) => (typeof d.threshold === "number" ? d.threshold : null));
    const known = thresholds.map((t, i) => [i, t]).filter(([, t]) => t !== null);
    if (known.length) {
      const steps = known.map(([i, t], k) => `${k ? "L" : "M"}${x.at(i).toFixed(1)},${y(t).toFixed(1)}`);
      const first = known[0];
      const last = known[known.length - 1];
      const path = `M${CHART.left},${y(first[1]).toFixed(1)} ${steps.join(" ").replace(/^M/, "L")} L${CHART.width - CHART.right},${y(last[1]).toFixed(1)}`;
      root.appendChild(svg("path", { d: path, class: "threshold" }, svgTitle(`threshold ${formatShare(last[1])}`)));
      root.appendChild(svg("text", { x: CHART.width - CHART.right - 2, y: y(last[1]) - 5, class: "threshold-label", "text-anchor": "end" }, `threshold ${formatShare(last[1])}`));
    }
    const line = runs.map((d, i) => `${i ? "L" : "M"}${x.at(i).toFixed(1)},${y(d.drift_share).toFixed(1)}`).join(" ");
    root.appendChild(svg("path", { d: line, class: "series" }));
    const points = svg("g", { class: "points" });
    runs.forEach((d, i) => {
      const drifted = d.status === "drift";
      const title = `${formatTime(d.logical_date || d.at)}: ${formatShare(d.drift_share)} (${String(d.status ?? "unknown")})`;
      points.appendChild(svg("circle", { cx: x.at(i), cy: y(d.drift_share), r: drifted ? 4.5 : 3.5, class: `point ${drifted ? "drifted" : ""}`, "data-share": d.drift_share }, svgTitle(title)));
    });
    root.appendChild(points);
    xLabels(root, runs.map((_, i) => ({ x: x.at(i), text: x.label(i) })));
    root.setAttribute("data-points", String(runs.length));
    return el("figure", "", root, el("figcaption", "muted", "Filled red points are checks that found drift; the dashed line is the configured drift share."));
  }

  function driftHeatmap(drift, count) {
    const runs = byDataTime((Array.isArray(drift) ? drift : []).filter((d) => d.columns && typeof d.columns === "object")).slice(-count);
    const columns = [...new Set(runs.flatMap((d) => Object.keys(d.columns)))].filter((c) => c !== "_truncated").sort();
    if (!runs.length || !columns.length) return empty("No per-column drift scores recorded yet.");
    const labelWidth = 150;
    const cellH = 20;
    const width = CHART.width;
    const cellW = (width - labelWidth - CHART.right) / runs.length;
    const height = CHART.top + columns.length * cellH + 46;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart heatmap", role: "img", "aria-label": "Per-column drift of the most recent checks" });
    root.appendChild(svgTitle("Per-column drift of the most recent checks (rows: columns, columns: checks, oldest left)"));
    columns.forEach((column, r) => {
      const y = CHART.top + r * cellH;
      const shown = column.length > 20 ? `${column.slice(0, 19)}…` : column;
      root.appendChild(svg("text", { x: labelWidth - 6, y: y + cellH / 2 + 4, class: "tick column-name", "text-anchor": "end" }, shown, svgTitle(column)));
      runs.forEach((d, c) => {
        const drifted = Array.isArray(d.drifted_columns) && d.drifted_columns.includes(column);
        const has = Object.prototype.hasOwnProperty.call(d.columns, column);
        const score = has ? d.columns[column] : null;
        const state = !has ? "missing" : drifted ? "drifted" : "stable";
        const title = `${column} · ${formatTime(d.logical_date || d.at)} · score ${formatNumber(score)} · ${state}`;
        const x = labelWidth + c * cellW;
        const cell = svg("g", { class: `cell ${state}` },
          svg("rect", { x: x + 1, y: y + 1, width: Math.max(1, cellW - 2), height: cellH - 2, rx: 2 }),
          svgTitle(title));
        if (drifted && cellW >= 10) cell.appendChild(svg("text", { x: x + cellW / 2, y: y + cellH / 2 + 4, "text-anchor": "middle", class: "mark" }, "×"));
        root.appendChild(cell);
      });
    });
    const baseY = CHART.top + columns.length * cellH + 16;
    const labels = runs.map((d, c) => ({ x: labelWidth + c * cellW + cellW / 2, text: toTime(d.logical_date || d.at) !== null ? shortDate(toTime(d.logical_date || d.at)).slice(5) : `#${c + 1}` }));
    xLabels(root, labels, baseY, 44);
    root.setAttribute("data-columns", String(columns.length));
    root.setAttribute("data-runs", String(runs.length));
    return el("figure", "", root, el("figcaption", "muted", "× and red: the column drifted in that check; grey: no score recorded. Hover a cell for its score."));
  }

  function metricChart(data) {
    const metric = data.primary_metric;
    const versions = (Array.isArray(data.versions) ? data.versions : [])
      .filter((v) => metric && v.metrics && typeof v.metrics[metric] === "number" && Number.isFinite(v.metrics[metric]))
      .slice()
      .sort((a, b) => compare(a.version, b.version, true));
    if (!versions.length) return empty("No holdout metric recorded yet.");
    const root = chartFrame(`${metric} on the holdout, per version`, "metric");
    const values = versions.map((v) => v.metrics[metric]);
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    const padding = (hi - lo) * 0.15 || Math.abs(hi) * 0.05 || 0.05;
    lo -= padding;
    hi += padding;
    const x = xByTimeOrIndex(versions, () => null);
    const y = scale([lo, hi], [CHART.height - CHART.bottom, CHART.top]);
    yAxis(root, y, niceTicks(lo, hi, 4), (t) => formatNumber(t, 3));
    root.appendChild(svg("path", { d: versions.map((v, i) => `${i ? "L" : "M"}${x.at(i).toFixed(1)},${y(values[i]).toFixed(1)}`).join(" "), class: "series" }));
    const champion = data.champion ? String(data.champion.version) : null;
    versions.forEach((v, i) => {
      const decision = v.decision || "none";
      const isChampion = String(v.version) === champion;
      const title = `v${v.version}: ${metric} ${formatNumber(values[i])} (${decision}${isChampion ? ", champion" : ""})`;
      root.appendChild(svg("circle", { cx: x.at(i), cy: y(values[i]), r: isChampion ? 6 : 4, class: `point decision-${decision.replace(/[^a-z_]/g, "")} ${isChampion ? "champion" : ""}` }, svgTitle(title)));
      if (isChampion) root.appendChild(svg("text", { x: x.at(i), y: y(values[i]) - 10, class: "point-label", "text-anchor": "middle" }, "champion"));
    });
    xLabels(root, versions.map((v, i) => ({ x: x.at(i), text: `v${v.version}` })));
    root.setAttribute("data-points", String(versions.length));
    return el("figure", "", root, el("figcaption", "muted", "Green: promoted; red: refused; grey: no decision. The larger point is the champion."));
  }

  function liveChart(data) {
    const series = Array.isArray(data.performance) ? data.performance : [];
    const metricOf = (p) => {
      const metrics = p && typeof p.metrics === "object" && p.metrics ? p.metrics : {};
      const name = data.primary_metric in metrics ? data.primary_metric : Object.keys(metrics)[0];
      return name === undefined ? null : { name, value: metrics[name] };
    };
    const points = series.map((p) => ({ p, m: metricOf(p) })).filter(({ m }) => m && typeof m.value === "number" && Number.isFinite(m.value));
    if (!points.length) return empty("No live performance yet: it appears once the model's config has a feedback section and labelled outcomes arrive.");
    const name = points[points.length - 1].m.name;
    const root = chartFrame(`Live ${name} over time`, "live");
    const values = points.map(({ m }) => m.value);
    const lo = Math.min(...values) - 0.05;
    const hi = Math.max(...values) + 0.05;
    const x = xByTimeOrIndex(points, ({ p }) => toTime(p.logical_date || p.at));
    const y = scale([lo, hi], [CHART.height - CHART.bottom, CHART.top]);
    yAxis(root, y, niceTicks(lo, hi, 4), (t) => formatNumber(t, 3));
    root.appendChild(svg("path", { d: points.map((_, i) => `${i ? "L" : "M"}${x.at(i).toFixed(1)},${y(values[i]).toFixed(1)}`).join(" "), class: "series" }));
    points.forEach(({ p }, i) => {
      const bad = p.status === "degraded";
      root.appendChild(svg("circle", { cx: x.at(i), cy: y(values[i]), r: bad ? 4.5 : 3.5, class: `point ${bad ? "drifted" : ""}` }, svgTitle(`${formatTime(p.at)}: ${name} ${formatNumber(values[i])} (${String(p.status ?? "")})`)));
    });
    xLabels(root, points.map((_, i) => ({ x: x.at(i), text: x.label(i) })));
    root.setAttribute("data-points", String(points.length));
    return el("figure", "", root);
  }

  // ---------- the model page ----------

  function actionsBar(data) {
    const actions = data.actions || {};
    const bar = el("nav", "actions");
    bar.setAttribute("aria-label", "Actions");
    const items = [
      [actions.trigger_retrain, "Trigger retrain", "Opens the retrain DAG's trigger form in Airflow"],
      [actions.rollback, "Roll back", "Opens the rollback DAG's trigger form in Airflow"],
      [actions.approvals, `Pending approvals (${(data.pending_approvals || []).length})`, "Opens the required actions in Airflow"],
    ];
    for (const [url, label, title] of items) {
      const node = link(url, label, { top: true, className: "button" });
      if (node && node.tagName === "A") bar.appendChild(withTitle(node, title));
    }
    return bar.children.length ? bar : null;
  }

  function summary(data) {
    const champion = data.champion;
    const list = el("dl", "summary");
    const add = (term, ...value) => append(list, [el("dt", "", term), el("dd", "", ...value)]);
    add("Champion", champion ? el("strong", "champion-version", `v${champion.version}`) : "none", champion ? el("span", "", " since ", time(champion.since)) : null);
    add("Primary metric", `${data.primary_metric ?? "—"} (${data.greater_is_better === false ? "lower" : "higher"} is better)`);
    const aliases = Object.entries(data.aliases || {}).map(([alias, version]) => `@${alias} → v${version}`);
    add("Aliases", aliases.length ? aliases.join(", ") : "none");
    const dags = [
      ["retrain", data.retrain_dag_id],
      ["drift monitor", data.drift_dag_id],
      ["batch score", data.score_dag_id],
      ["rollback", data.rollback_dag_id],
    ].filter(([, id]) => id);
    add("DAGs", dags.length ? dags.map(([label, id], i) => [i ? ", " : "", link(dagUrl(id), String(id), { top: true }), ` (${label})`]) : "—");
    return list;
  }

  function versionsTable(data) {
    const versions = Array.isArray(data.versions) ? data.versions : [];
    if (!versions.length) return empty("No registered versions yet.");
    const rows = versions.map((v) => {
      const gates = Array.isArray(v.gates) ? v.gates : [];
      const links = v.links || {};
      return [
        el("span", "stack", el("strong", "", `v${v.version}`), (v.aliases || []).map((a) => badge(`@${a}`, a === "champion" ? "ok" : "muted"))),
        time(v.created_at),
        el("span", "stack", link(links.mlflow_run, v.run_id ? `run ${String(v.run_id).slice(0, 12)}` : "MLflow run", { fallback: v.run_id ? String(v.run_id) : "—" }), link(links.mlflow_version, "MLflow version"), link(links.dag_run, "DAG run", { top: true }), link(links.model_card, "Model card")),
        withTitle(el("code", "", v.training_data_fingerprint ? String(v.training_data_fingerprint).slice(0, 12) : "—"), v.training_data_fingerprint),
        el("span", "stack", v.validation_result ? el("span", "", `validation: ${v.validation_result}`) : null, v.trigger_cause ? el("span", "", `cause: ${v.trigger_cause}`) : null),
        keyValues(v.metrics),
        keyValues(v.deltas, formatSigned),
        gates.length ? el("ul", "gates", gates.map((g) => el("li", g.passed ? "pass" : "fail", g.passed ? "✓ " : "✗ ", gateText(g)))) : "—",
        el("span", "stack decision", decisionBadge(v.decision), v.reason ? el("span", "reason", String(v.reason)) : null),
        el("span", "stack", el("span", "", v.decided_by ? String(v.decided_by) : "—"), v.decided_at ? time(v.decided_at) : null),
        liveVersionCell(v.live),
      ];
    });
    const headers = ["Version", "Created", "Training run", "Data fingerprint", "Lineage", "Holdout metrics", "Δ vs champion", "Gates", "Decision", "Decided by", "Live"];
    return scroller(plainTable(headers, rows, "versions"));
  }

  function aliasTimeline(history) {
    const items = Array.isArray(history) ? history.slice().reverse() : [];
    if (!items.length) return empty("No alias moves recorded yet.");
    return el("ol", "timeline", items.map((h) => el("li", "",
      el("div", "when", time(h.when)),
      el("div", "what", badge(`@${h.alias ?? "?"}`, "muted"), " ", String(h.action ?? "move"), ": ",
        el("strong", "", h.from ? `v${h.from}` : "none"), " → ", el("strong", "", h.to ? `v${h.to}` : "none")),
      h.why ? el("div", "why", String(h.why)) : null,
      el("div", "muted", "by ", String(h.who ?? "unknown")))));
  }

  function driftTable(drift) {
    const recent = byDataTime(Array.isArray(drift) ? drift : []).slice(-TABLE_ROWS).reverse();
    if (!recent.length) return null;
    return scroller(plainTable(["Data of", "Checked", "Status", "Drift share", "Drifted columns", "Report", "DAG run"], recent.map((d) => [
      time(d.logical_date),
      time(d.at),
      driftBadge(d.status),
      `${formatShare(d.drift_share)} (threshold ${formatShare(d.threshold)})`,
      Array.isArray(d.drifted_columns) && d.drifted_columns.length ? d.drifted_columns.map(String).join(", ") : "none",
      link(d.report_url, "drift report", { fallback: "—" }),
      link(dagRunUrl(d.dag_id, d.dag_run_id), String(d.dag_run_id ?? ""), { top: true, fallback: "—" }),
    ]), "drift-runs"));
  }

  function liveBadge(status) {
    return badge(String(status ?? "—"), status === "degraded" ? "bad" : status === "ok" ? "ok" : "muted");
  }

  function liveVersionCell(live) {
    if (!live || typeof live !== "object") return "—";
    return el("span", "stack", liveBadge(live.status),
      typeof live.labels === "number" ? el("span", "muted", `${live.labels} labelled rows`) : null,
      live.reason ? el("span", "reason", String(live.reason)) : null,
      live.at ? time(live.at) : null);
  }

  function performanceTable(performance) {
    const recent = byDataTime(Array.isArray(performance) ? performance : []).slice(-TABLE_ROWS).reverse();
    if (!recent.length) return null;
    return scroller(plainTable(["Data of", "Checked", "Status", "Labels", "Live metrics", "Reason", "DAG run"], recent.map((p) => [
      time(p.logical_date),
      time(p.at),
      liveBadge(p.status),
      typeof p.labels === "number" ? String(p.labels) : "—",
      keyValues(p.metrics),
      p.reason ? el("span", "reason", String(p.reason)) : "—",
      link(dagRunUrl(p.dag_id, p.dag_run_id), String(p.dag_run_id ?? ""), { top: true, fallback: "—" }),
    ]), "performance-runs"));
  }

  function retrainsTable(retrains) {
    const runs = Array.isArray(retrains) ? retrains : [];
    if (!runs.length) return empty("No retrain runs found in Airflow.");
    return scroller(plainTable(["Run", "State", "Cause", "By", "Started", "Ended"], runs.map((r) => [
      link(dagRunUrl(r.dag_id, r.dag_run_id), String(r.dag_run_id ?? ""), { top: true, fallback: "—" }),
      stateBadge(r.state),
      r.cause ? String(r.cause) : "—",
      r.triggered_by ? String(r.triggered_by) : "—",
      time(r.start_date || r.logical_date),
      time(r.end_date),
    ]), "retrains"));
  }

  function approvalsList(approvals) {
    const items = Array.isArray(approvals) ? approvals : [];
    if (!items.length) return empty("Nothing waits for an approval.");
    return el("ul", "approvals", items.map((a) => el("li", "",
      link(a.url, String(a.subject || `${a.dag_id} / ${a.task_id}`), { top: true, fallback: String(a.subject || a.task_id || "approval") }),
      el("span", "muted", ` (${a.dag_id ?? ""} · ${a.dag_run_id ?? ""})`))));
  }

  function renderModel(root, data) {
    const charts = { driftShare: driftShareChart, heatmap: driftHeatmap, metricByVersion: metricChart, livePerformance: liveChart };
    root.replaceChildren(
      el("p", "crumbs", link(`${BASE}/models`, "← All models")),
      el("header", "page-head", el("h1", "model-name", String(data.name)), actionsBar(data)),
      section("Summary", summary(data)),
      el("div", "charts",
        section("Drift share per check", charts.driftShare(data.drift)),
        section("Drift per column (recent checks)", charts.heatmap(data.drift, HEATMAP_RUNS)),
        section(`Primary metric across versions${data.primary_metric ? `: ${data.primary_metric}` : ""}`, charts.metricByVersion(data)),
        section("Live performance", charts.livePerformance(data))),
      section("Versions", versionsTable(data)),
      section("Alias history", aliasTimeline(data.alias_history)),
      section("Drift checks", driftTable(data.drift) || empty("No drift checks recorded yet.")),
      section("Performance checks", performanceTable(data.performance) || empty("No performance checks recorded yet.")),
      section("Retrain runs", retrainsTable(data.retrains)),
      section("Pending approvals", approvalsList(data.pending_approvals)),
    );
    document.title = `${data.name} · Models`;
  }

  // ---------- start ----------

  function currentRoute() {
    const prefix = `${BASE}/models`;
    const path = location.pathname;
    if (path === prefix || path === `${prefix}/`) return { view: "list" };
    if (!path.startsWith(`${prefix}/`)) return { view: "list" };
    try {
      return { view: "model", name: decodeURIComponent(path.slice(prefix.length + 1)) };
    } catch (err) {
      return { view: "model", name: null };
    }
  }

  async function start() {
    const root = document.getElementById("app");
    const route = currentRoute();
    try {
      if (route.view === "list") {
        renderList(root, await getJSON(`${BASE}/api/models`));
      } else if (route.name === null || route.name === "") {
        throw new PageError(404, STATUS_MESSAGES[404]);
      } else {
        renderModel(root, await getJSON(`${BASE}/api/models/${encodeURIComponent(route.name)}`));
      }
      root.dataset.state = "ready";
    } catch (error) {
      if (!(error instanceof PageError)) console.error(error);
      showError(root, error instanceof PageError ? error : new PageError(0, "The page failed to draw this answer."));
      root.dataset.state = "error";
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
