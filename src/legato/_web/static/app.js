// legato dashboard: plain JavaScript, no build step, nothing loaded from the network.
// Every page is an HTML shell (page.html) filled from the JSON API (/api/...), and kept
// up to date by the server-sent events of /api/events.
"use strict";

const TOKEN = document.querySelector('meta[name="legato-token"]').content;
const PAGE = document.body.dataset.page;
const ARGS = JSON.parse(document.body.dataset.args || "{}");
const MAIN = document.getElementById("main");
const STATES = ["running", "incomplete", "failed", "cancelled", "done"];

// -- helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  return fill(node, ...children);
}

// Replace a node's children; null, undefined and false are skipped, arrays flattened.
function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
  return response.json();
}

async function post(path) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-Legato-Token": TOKEN },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

const enc = encodeURIComponent;
const jobUrl = (type, id) => `/jobs/${enc(type)}/${id}`;
const apiJob = (type, id) => `/api/jobs/${enc(type)}/${id}`;
const shortType = (type) => type.slice(type.lastIndexOf(".") + 1);

function fmtTime(t) {
  if (t === null || t === undefined) return "–";
  const d = new Date(t * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(s) {
  if (s === null || s === undefined || s < 0) return "–";
  if (s < 10) return `${s.toFixed(2)}s`;
  s = Math.floor(s);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}

function tagText(v) {
  if (typeof v === "string") return v;
  if (v === null || typeof v !== "object") return String(v);
  return JSON.stringify(v);
}

const badge = (state) => el("span", { class: `state s-${state}` }, state);

function progressBar(job) {
  const p = job.progress;
  const fraction = p ? p.fraction : job.state === "done" ? 1 : null;
  if (fraction === null) return el("span", { class: "muted" }, "–");
  const fill = el("span", { class: `fill s-${job.state}` });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  const label = `${Math.round(fraction * 100)}%` + (p && p.desc ? ` ${p.desc}` : "");
  return el("span", { class: "progress", title: label }, el("span", { class: "bar" }, fill),
    el("span", { class: "plabel" }, label));
}

function showError(where, error) {
  fill(where, el("p", { class: "error" }, String(error.message || error)));
}

// A page asks again on each live update and each click, and answers may come back out of
// order: `const current = newest();` then, per request, `const mine = current();` and,
// once the answer is in, `if (!mine()) return;` drops one overtaken by a later request.
function newest() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

function debounce(fn, ms) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => { if (timer === null) timer = setTimeout(run, ms); };
  return schedule;
}

// -- live updates -------------------------------------------------------------------

const listeners = [];
function onChange(fn) { listeners.push(fn); }

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => { live.textContent = "live"; live.className = "live on"; });
  source.addEventListener("change", (event) => {
    const data = JSON.parse(event.data);
    for (const fn of listeners) fn(data.jobs);
  });
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

async function act(kind, type, id, after) {
  const short = `${shortType(type)} ${id.slice(0, 12)}`;
  const question = kind === "kill"
    ? `Kill job ${short}? Its process is sent SIGTERM and the job is marked cancelled.`
    : `Remove job ${short}? Its directory (outputs and logs) is deleted.`;
  if (!window.confirm(question)) return;
  try {
    const result = await post(`${apiJob(type, id)}/${kind === "kill" ? "kill" : "remove"}`);
    flash(result.message || "done");
    if (kind === "remove" && PAGE === "job") {
      location.assign("/jobs");  // nothing left to show here
      return;
    }
  } catch (error) {
    flash(String(error.message || error), true);
  }
  if (after) after();
}

function flash(text, bad) {
  const note = el("div", { class: bad ? "flash bad" : "flash" }, text);
  document.body.append(note);
  setTimeout(() => note.remove(), 6000);
}

function actions(job, after, here) {
  const box = el("span", { class: "actions" },
    here ? null : el("a", { href: jobUrl(job.type, job.id), title: "parameters, failure, dependencies" }, "view"),
    here ? null : el("a", { href: `${jobUrl(job.type, job.id)}#logs`, title: "stdout and stderr, followed live" }, "log"));
  if (job.state === "running") {
    box.append(el("button", { class: "kill", onclick: () => act("kill", job.type, job.id, after) }, "kill"));
  } else {
    box.append(el("button", { class: "remove", onclick: () => act("remove", job.type, job.id, after) }, "remove"));
  }
  return box;
}

// -- experiments --------------------------------------------------------------------

function countsBar(counts, total) {
  const bar = el("span", { class: "counts" });
  for (const state of ["done", "running", "failed", "cancelled", "incomplete"]) {
    const n = counts[state] || 0;
    if (!n) continue;
    const part = el("span", { class: `seg s-${state}`, title: `${n} ${state}` });
    part.style.width = `${(100 * n) / Math.max(1, total)}%`;
    bar.append(part);
  }
  return bar;
}

async function experimentsPage() {
  fill(MAIN, el("h1", {}, "Experiments"), el("div", { id: "content" }));
  const content = document.getElementById("content");
  const current = newest();
  const render = async () => {
    const mine = current();
    let data;
    try { data = await api("/api/experiments"); } catch (error) { return mine() && showError(content, error); }
    if (!mine()) return;
    if (!data.experiments.length) {
      fill(content, el("p", { class: "muted" }, "No experiment in this workdir yet."));
      return;
    }
    const rows = data.experiments.map((xp) => {
      const c = xp.counts;
      const summary = STATES.filter((s) => c[s]).map((s) => el("span", { class: `count s-${s}` }, `${c[s]} ${s}`));
      return el("tr", { "data-name": xp.name },
        el("td", {}, el("a", { href: `/experiments/${enc(xp.name)}` }, xp.name)),
        el("td", {}, el("span", { class: `status x-${xp.status}` }, xp.live ? "● live" : xp.status)),
        el("td", { class: "num" }, xp.jobs),
        el("td", {}, countsBar(c, xp.jobs), el("span", { class: "summary" }, summary)),
        el("td", {}, fmtTime(xp.started)),
        el("td", {}, fmtTime(xp.updated)),
        el("td", {}, xp.host ? `${xp.host}${xp.pid ? ` (pid ${xp.pid})` : ""}` : "–"),
        el("td", {}, el("a", { href: `/experiments/${enc(xp.name)}` }, "jobs"), " · ",
          el("a", { href: `/experiments/${enc(xp.name)}/graph` }, "graph")));
    });
    fill(content, el("table", { class: "grid", id: "experiments" },
      el("thead", {}, el("tr", {}, ["Name", "Status", "Jobs", "States", "Started", "Updated", "Host", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
  };
  onChange(debounce(render, 300));
  await render();
}

// -- jobs table ---------------------------------------------------------------------

async function jobsPage() {
  const params = new URLSearchParams(location.search);
  const view = {
    states: new Set((params.get("state") || "").split(",").filter(Boolean)),
    type: params.get("type") || "",
    tags: params.getAll("tag"),
    q: params.get("q") || "",
    sort: params.get("sort") || "started",
    order: params.get("order") || "asc",
    offset: Number(params.get("offset") || 0),
    limit: Number(params.get("limit") || 100),
  };
  const title = ARGS.experiment ? `Experiment ${ARGS.experiment}` : ARGS.orphans ? "Orphans" : "Jobs";
  const intro = ARGS.orphans
    ? el("p", { class: "muted" }, "Job directories that no experiment of this workdir lists (legato clean --orphans removes them).")
    : ARGS.experiment
      ? el("p", {}, el("a", { href: `/experiments/${enc(ARGS.experiment)}/graph` }, "dependency graph"))
      : null;
  const toolbar = el("div", { class: "toolbar" });
  const table = el("div", { id: "table" });
  const pager = el("div", { class: "pager" });
  fill(MAIN, el("h1", {}, title), intro, toolbar, pager, table);

  const stateBox = el("span", { class: "chips", id: "state-filter" });
  const typeSelect = el("select", { id: "type-filter", onchange: () => { view.type = typeSelect.value; view.offset = 0; reload(); } });
  const tagInput = el("input", { id: "tag-filter", placeholder: "tag filter: key=value, …", value: view.tags.join(", ") });
  const search = el("input", { id: "search", placeholder: "identifier or type", value: view.q });
  tagInput.addEventListener("change", () => {
    view.tags = tagInput.value.split(",").map((s) => s.trim()).filter(Boolean);
    view.offset = 0; reload();
  });
  search.addEventListener("change", () => { view.q = search.value.trim(); view.offset = 0; reload(); });
  toolbar.append(stateBox, el("label", {}, "type ", typeSelect), el("label", {}, tagInput), el("label", {}, search));

  const query = () => {
    const q = new URLSearchParams();
    if (ARGS.experiment) q.set("experiment", ARGS.experiment);
    if (ARGS.orphans) q.set("orphans", "1");
    if (view.states.size) q.set("state", [...view.states].join(","));
    if (view.type) q.set("type", view.type);
    for (const t of view.tags) q.append("tag", t);
    if (view.q) q.set("q", view.q);
    q.set("sort", view.sort);
    q.set("order", view.order);
    q.set("offset", view.offset);
    q.set("limit", view.limit);
    return q;
  };

  const syncUrl = () => {
    const q = query();
    q.delete("experiment"); q.delete("orphans");
    history.replaceState(null, "", `${location.pathname}?${q}`);
  };

  const setSort = (column) => {
    if (view.sort === column) view.order = view.order === "asc" ? "desc" : "asc";
    else { view.sort = column; view.order = "asc"; }
    reload();
  };

  const header = (label, column) => {
    const mark = view.sort === column ? (view.order === "asc" ? " ▲" : " ▼") : "";
    return el("th", { class: "sortable", "data-sort": column, onclick: () => setSort(column) }, label + mark);
  };

  const current = newest();
  const render = async () => {
    const mine = current();
    const asked = query().toString();
    let data;
    try { data = await api(`/api/jobs?${asked}`); } catch (error) { return mine() && showError(table, error); }
    // An answer to a view changed since (whose render is on its way) would show the rows
    // of one view under the headers of another.
    if (!mine() || query().toString() !== asked) return;
    syncUrl();
    fill(stateBox, ...STATES.map((s) => el("button", {
      class: `chip s-${s}${view.states.has(s) ? " on" : ""}`, "data-state": s,
      onclick: () => { view.states.has(s) ? view.states.delete(s) : view.states.add(s); view.offset = 0; reload(); },
    }, `${s} ${data.counts[s] || 0}`)));
    const types = ["", ...data.types];
    if (view.type && !types.includes(view.type)) types.push(view.type);
    fill(typeSelect, ...types.map((t) => el("option", { value: t, selected: t === view.type }, t ? shortType(t) : "all types")));
    const keys = data.tag_keys;
    const head = el("tr", {}, header("State", "state"), header("Type", "type"), header("ID", "id"),
      keys.map((k) => header(k, `tag:${k}`)), header("Progress", "progress"), header("Duration", "duration"),
      header("Started", "started"), header("Ended", "ended"), el("th", {}, ""));
    const rows = data.jobs.map((job) => el("tr", { "data-id": job.id, "data-state": job.state },
      el("td", {}, badge(job.state)),
      el("td", { title: job.type }, shortType(job.type)),
      el("td", { class: "mono" }, el("a", { href: jobUrl(job.type, job.id) }, job.id.slice(0, 12))),
      keys.map((k) => el("td", { class: "tag", "data-tag": k }, k in job.tags ? tagText(job.tags[k]) : "")),
      el("td", {}, progressBar(job)),
      el("td", { class: "num" }, fmtDuration(job.duration)),
      el("td", {}, fmtTime(job.started)),
      el("td", { title: job.reason || "" }, fmtTime(job.ended)),
      el("td", {}, actions(job, reload))));
    fill(table, el("table", { class: "grid", id: "jobs" }, el("thead", {}, head), el("tbody", {}, rows)));
    if (!data.total) table.append(el("p", { class: "muted" }, "No job matches."));
    const first = data.total ? data.offset + 1 : 0;
    const last = data.offset + data.jobs.length;
    fill(pager,
      el("button", { disabled: view.offset === 0, onclick: () => { view.offset = Math.max(0, view.offset - view.limit); reload(); } }, "‹ previous"),
      el("span", { id: "range" }, ` ${first}–${last} of ${data.total} `),
      el("button", { disabled: last >= data.total, onclick: () => { view.offset += view.limit; reload(); } }, "next ›"));
  };
  const reload = debounce(render, 0);
  onChange(debounce(render, 400));
  await render();
}

// -- one job ------------------------------------------------------------------------

function renderValue(value) {
  if (value === null || typeof value !== "object") return el("code", {}, JSON.stringify(value));
  if (Array.isArray(value)) {
    if (!value.some((v) => v !== null && typeof v === "object")) return el("code", {}, JSON.stringify(value));
    return el("ol", { class: "tree" }, value.map((v) => el("li", {}, renderValue(v))));
  }
  const entries = Object.entries(value).filter(([k]) => k !== "__type__" && k !== "__output_of__");
  const head = value.__type__ ? el("span", { class: "cfg", title: value.__type__ }, shortType(value.__type__)) : null;
  let source = null;
  if (value.__output_of__) {
    const [type, id] = splitName(value.__output_of__);
    source = el("span", { class: "muted" }, " output of ", el("a", { href: jobUrl(type, id) }, `${shortType(type)} ${id.slice(0, 12)}`));
  }
  return el("div", { class: "tree" }, head, source,
    el("dl", {}, entries.map(([k, v]) => [el("dt", {}, k), el("dd", {}, renderValue(v))])));
}

function splitName(name) {
  const at = name.lastIndexOf("/");
  return [name.slice(0, at), name.slice(at + 1)];
}

function followLog(type, id, stream, pre, note) {
  let source = null;
  const start = () => {
    source = new EventSource(`${apiJob(type, id)}/log/${stream}/follow`);
    source.addEventListener("append", (event) => {
      const data = JSON.parse(event.data);
      if (data.restarted) pre.textContent = "";
      if (data.start > 0 && !pre.textContent) note.textContent = `(the first ${data.start} bytes are not shown)`;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(data.text);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("end", () => { source.close(); pre.classList.add("ended"); });
  };
  start();
  return () => source && source.close();
}

async function jobPage() {
  const [type, id] = splitName(ARGS.job);
  const head = el("div", { id: "job-head" });
  const body = el("div", { id: "job-body" });
  const logs = el("section", { id: "logs" });
  fill(MAIN, head, body, logs);
  let logsStarted = false;

  const current = newest();
  const render = async () => {
    const mine = current();
    let job;
    try { job = await api(apiJob(type, id)); } catch (error) { return mine() && showError(body, error); }
    if (!mine()) return;
    fill(head,
      el("h1", {}, shortType(job.type), " ", el("span", { class: "mono" }, job.id.slice(0, 12)), " ", badge(job.state)),
      actions(job, render, true));
    const info = [
      ["type", job.type], ["identifier", el("span", { class: "mono" }, job.id)],
      ["state", badge(job.state)], ["reason", job.reason ? el("span", { class: "reason", id: "reason" }, job.reason) : null],
      ["progress", job.progress ? progressBar(job) : null],
      ["started", job.started ? fmtTime(job.started) : null], ["ended", job.ended ? fmtTime(job.ended) : null],
      ["duration", job.duration !== null && job.duration !== undefined ? fmtDuration(job.duration) : null],
      ["experiments", (job.experiments || []).length ? job.experiments.map((x) => [el("a", { href: `/experiments/${enc(x)}` }, x), " "]) : null],
      ["launcher", job.launcher ? `${job.launcher}${job.host ? ` on ${job.host}` : ""}${job.pid ? `, pid ${job.pid}` : ""}${job.slurm_id ? `, SLURM job ${job.slurm_id}` : ""}` : null],
      ["directory", el("span", { class: "mono" }, job.path)],
      ["main directory", job.main_dir ? el("span", { class: "mono", id: "main-dir" }, job.main_dir) : null],
    ].filter(([, v]) => v !== null && v !== undefined);
    const tags = Object.entries(job.tags || {});
    const deps = (job.dependencies || []).map((d) => el("li", {}, badge(d.state), " ",
      el("a", { href: jobUrl(d.type, d.id) }, `${shortType(d.type)} ${d.id.slice(0, 12)}`)));
    const dependents = (job.dependents || []).map((d) => el("li", {}, badge(d.state), " ",
      el("a", { href: jobUrl(d.type, d.id) }, `${shortType(d.type)} ${d.id.slice(0, 12)}`)));
    const failure = job.failure && job.failure.traceback
      ? el("section", {}, el("h2", {}, "Failure"), el("pre", { class: "log", id: "traceback" }, job.failure.traceback))
      : null;
    fill(body,
      el("table", { class: "info" }, info.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))),
      el("section", {}, el("h2", {}, "Tags"), tags.length
        ? el("span", { class: "chips", id: "tags" }, tags.map(([k, v]) => el("span", { class: "chip tagchip" }, `${k}=${tagText(v)}`)))
        : el("p", { class: "muted" }, "none")),
      failure,
      el("section", {}, el("h2", {}, "Parameters"), job.params_error
        ? el("p", { class: "error" }, job.params_error)
        : job.params ? el("div", { id: "params" }, renderValue(job.params)) : el("p", { class: "muted" }, "no params file yet")),
      Object.keys(job.paths || {}).length
        ? el("section", {}, el("h2", {}, "Paths"), el("dl", { class: "kv" }, Object.entries(job.paths).map(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, v)])))
        : null,
      el("section", {}, el("h2", {}, "Depends on"), deps.length ? el("ul", { id: "deps" }, deps) : el("p", { class: "muted" }, "nothing")),
      dependents.length ? el("section", {}, el("h2", {}, "Used by"), el("ul", { id: "dependents" }, dependents)) : null);
    if (!logsStarted) {
      logsStarted = true;
      const streams = ["stdout", "stderr", ...(job.logs || []).filter((l) => l.startsWith("slurm."))];
      logs.append(el("h2", {}, "Logs"));
      for (const stream of streams) {
        const pre = el("pre", { class: "log", id: `log-${stream.replace(".", "-")}` });
        const note = el("span", { class: "muted" });
        logs.append(el("h3", {}, stream, " ", note), pre);
        followLog(type, id, stream, pre, note);
      }
    }
  };
  const again = debounce(render, 300);
  onChange((names) => { if (!names || names.includes(ARGS.job)) again(); });
  await render();
}

// -- graph --------------------------------------------------------------------------

async function graphPage() {
  const name = ARGS.experiment;
  const holder = el("div", { id: "graph" });
  fill(MAIN, el("h1", {}, `Graph of ${name}`),
    el("p", {}, el("a", { href: `/experiments/${enc(name)}` }, "jobs table"), " · ",
      STATES.map((s) => [badge(s), " "])), holder);
  const W = 190, H = 34, GX = 70, GY = 12;
  const current = newest();
  const render = async () => {
    const mine = current();
    let g;
    try { g = await api(`/api/experiments/${enc(name)}/graph`); } catch (error) { return mine() && showError(holder, error); }
    if (!mine()) return;
    const MAX = 3000;  // beyond that, a picture is no help and the page slows down
    const shown = g.nodes.slice(0, MAX);
    const columns = [];
    for (const node of shown) (columns[node.layer] = columns[node.layer] || []).push(node);
    // A column a layer; in a column, each job level with the jobs it depends on when there is
    // room, so that arrows run straight.
    const parents = new Map();
    for (const [from, to] of g.edges) (parents.get(to) || parents.set(to, []).get(to)).push(from);
    const row = new Map();
    let rows = 1;
    columns.forEach((col) => {
      const want = (node) => {
        const ys = (parents.get(`${node.type}/${node.id}`) || []).map((p) => row.get(p)).filter((y) => y !== undefined);
        return ys.length ? Math.min(...ys) : 0;
      };
      col.sort((a, b) => want(a) - want(b));
      let next = 0;
      for (const node of col) {
        const y = Math.max(next, want(node));
        row.set(`${node.type}/${node.id}`, y);
        next = y + 1;
      }
      rows = Math.max(rows, next);
    });
    const pos = new Map();
    columns.forEach((col, x) => col.forEach((node) => {
      const name = `${node.type}/${node.id}`;
      pos.set(name, [x * (W + GX) + 10, row.get(name) * (H + GY) + 10]);
    }));
    const width = columns.length * (W + GX) + 20;
    const height = rows * (H + GY) + 20;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "graph-svg" });
    const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })));
    root.append(defs);
    for (const [from, to] of g.edges) {
      const a = pos.get(from), b = pos.get(to);
      if (!a || !b) continue;
      const x1 = a[0] + W, y1 = a[1] + H / 2, x2 = b[0], y2 = b[1] + H / 2, mx = (x1 + x2) / 2;
      root.append(svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge", "marker-end": "url(#arrow)" }));
    }
    for (const node of shown) {
      const [x, y] = pos.get(`${node.type}/${node.id}`);
      const tags = Object.entries(node.tags).map(([k, v]) => `${k}=${tagText(v)}`).join(" ");
      const title = svg("title", {});
      title.textContent = `${node.type}/${node.id}\n${node.state}${tags ? `\n${tags}` : ""}`;
      const label = svg("text", { x: x + 8, y: y + 14, class: "nlabel" });
      label.textContent = `${shortType(node.type)} ${node.id.slice(0, 8)}`;
      const sub = svg("text", { x: x + 8, y: y + 27, class: "nsub" });
      sub.textContent = tags.length > 30 ? `${tags.slice(0, 29)}…` : tags || node.state;
      const link = svg("a", { href: jobUrl(node.type, node.id), class: "node", "data-id": node.id, "data-state": node.state },
        title, svg("rect", { x, y, width: W, height: H, rx: 5, class: `s-${node.state}` }), label, sub);
      root.append(link);
    }
    fill(holder, g.nodes.length > MAX
      ? el("p", { class: "muted" }, `The first ${MAX} of ${g.nodes.length} jobs, in submission order.`)
      : null, root);
  };
  onChange(debounce(render, 500));
  await render();
}

// -- start --------------------------------------------------------------------------

const pages = { experiments: experimentsPage, jobs: jobsPage, job: jobPage, graph: graphPage };
connect();
(pages[PAGE] || experimentsPage)().catch((error) => showError(MAIN, error));
