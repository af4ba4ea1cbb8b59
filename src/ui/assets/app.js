'use strict';
// Read-only web UI of batchd. Names of DAGs, tasks and partitions, params, reasons and log
// text are untrusted bytes, so everything is inserted as text nodes (never as markup).

(() => {
  const TOKEN_KEY = 'batchd-token';
  const POLL_MS = 3000;
  const FOLLOW_MS = 1000;
  const DAGS_PER_PAGE = 50;
  const GRID_RUNS = 25;
  const GANTT_LIMIT = 200;
  const FAILED_LIMIT = 100;
  const LOG_CHUNK = 1024 * 1024; // the daemon's largest log reply
  const LOG_KEEP = 1024 * 1024; // characters of log text kept in memory
  const LOG_TAIL = 64 * 1024; // characters shown in Tail mode

  // A task's summary state in a run: the first of these with a count above zero.
  const SUMMARY_PRIORITY = ['running', 'retry_wait', 'failed', 'upstream_failed', 'queued',
    'pending', 'cancelled', 'skipped', 'success'];
  const COUNT_ORDER = ['success', 'failed', 'upstream_failed', 'running', 'retry_wait', 'queued',
    'pending', 'skipped', 'cancelled'];
  const OUTCOMES = ['running', 'success', 'failed', 'timeout', 'lost', 'cancelled'];

  const enc = encodeURIComponent;
  const ui = {};

  // ---------------------------------------------------------------- DOM helpers

  function add(parent, kid) {
    if (kid == null || kid === false) return;
    if (Array.isArray(kid)) kid.forEach((k) => add(parent, k));
    else parent.append(kid instanceof Node ? kid : String(kid));
  }

  // h('a', {href, class, dataset: {run}}, 'text', child...). Strings become text nodes.
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'dataset') {
          for (const [dk, dv] of Object.entries(v)) if (dv != null) el.dataset[dk] = String(dv);
        } else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(el, kids);
    return el;
  }

  function frag(...kids) {
    const f = document.createDocumentFragment();
    add(f, kids);
    return f;
  }

  // Re-rendering every 3 s must not steal keyboard focus: remember the focused element
  // (or its link target) and focus it again after the subtree was replaced.
  function keepFocus(root) {
    const active = document.activeElement;
    if (!active || active === document.body || !root.contains(active)) return () => {};
    const href = active.getAttribute('href');
    const id = active.id;
    return () => {
      let el = active.isConnected ? active : null;
      if (!el && id) el = document.getElementById(id);
      if (!el && href) el = Array.from(root.querySelectorAll('a[href]')).find((a) => a.getAttribute('href') === href);
      if (el && document.activeElement !== el) el.focus({ preventScroll: true });
    };
  }

  // Replaces el's content with build(data) only when data changed, so an unchanged
  // section keeps its text selection and focus.
  const sectionSigs = new WeakMap();
  function update(el, data, build) {
    const sig = JSON.stringify(data);
    if (sectionSigs.get(el) === sig) return;
    sectionSigs.set(el, sig);
    const restore = keepFocus(el);
    el.replaceChildren(build());
    restore();
  }

  // Keyed rows: a row whose item did not change is kept as is; others are rebuilt. When
  // no row changed the DOM is not touched at all (text selections survive the poll).
  const rowCache = new WeakMap();
  function syncRows(parent, items, keyOf, build, sigOf = (x) => JSON.stringify(x)) {
    const prev = rowCache.get(parent) || new Map();
    const next = new Map();
    const rows = [];
    for (const item of items) {
      const key = keyOf(item);
      const sig = sigOf(item);
      let entry = prev.get(key);
      if (!entry || entry.sig !== sig || next.has(key)) entry = { el: build(item), sig };
      next.set(key, entry);
      rows.push(entry.el);
    }
    rowCache.set(parent, next);
    const current = parent.children;
    if (rows.length === current.length && rows.every((el, i) => current[i] === el)) return;
    const restore = keepFocus(parent);
    parent.replaceChildren(...rows);
    restore();
  }

  // A table without links gets a focusable wrapper, so keyboard users can scroll it sideways.
  function dataTable(id, caption, headers, { linkless = false } = {}) {
    const tbody = h('tbody');
    const table = h('table', { id, class: 'data' },
      h('caption', { class: 'sr-only' }, caption),
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
      tbody);
    const wrap = linkless ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption }, table)
      : h('div', { class: 'table-wrap' }, table);
    return { table, tbody, wrap };
  }

  function dl(id, items) {
    const list = h('dl', { id, class: 'facts' });
    for (const [term, value] of items) {
      if (value === undefined) continue;
      list.append(h('dt', null, term), h('dd', null, value == null ? '—' : value));
    }
    return list;
  }

  function section(title, ...kids) {
    return h('section', { class: 'panel' }, h('h2', null, title), kids);
  }

  // ---------------------------------------------------------------- formatting

  const nf = new Intl.NumberFormat('en-US');
  const num = (n) => (n == null ? '—' : nf.format(n));

  function partsOf(fmt, date) {
    const o = {};
    for (const p of fmt.formatToParts(date)) o[p.type] = p.value;
    return o;
  }

  // en-GB names European zones (CET), en-US the American ones (EST); other zones
  // come out as "GMT+9" in both.
  const zoneFormats = new Map();
  const unknownZones = new Set();
  function zoneText(zone) {
    zoneFormat(zone || 'UTC');
    return unknownZones.has(zone) ? `${zone} (unknown to this browser: times in UTC)` : zone;
  }
  function zoneFormat(zone) {
    let fmt = zoneFormats.get(zone);
    if (fmt) return fmt;
    const opts = { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit',
      minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short' };
    try {
      for (const locale of ['en-GB', 'en-US']) {
        const f = new Intl.DateTimeFormat(locale, opts);
        fmt = fmt || f;
        const names = [Date.UTC(2026, 0, 15), Date.UTC(2026, 6, 15)].map((t) => partsOf(f, new Date(t)).timeZoneName);
        if (!names.some((n) => /^(GMT|UTC)[+\-\u2212]/.test(n))) { fmt = f; break; }
      }
    } catch (e) {
      unknownZones.add(zone); // a zone this browser does not know: shown in UTC
      fmt = zoneFormat('UTC');
    }
    zoneFormats.set(zone, fmt);
    return fmt;
  }

  // A zone's offset and abbreviation change only at quarter hours (every offset is a
  // multiple of 15 minutes and switches happen at whole or half local hours), so Intl,
  // which is slow, is asked once per zone and quarter hour; the rest is arithmetic. A
  // page of 200 Gantt bars formats about 1,000 times.
  const QUARTER_MS = 15 * 60 * 1000;
  const offsets = new Map(); // formatter -> Map(quarter start -> {offset, name})
  function zoneOffset(zone, ms) {
    const fmt = zoneFormat(zone);
    let cache = offsets.get(fmt);
    if (!cache || cache.size > 10000) offsets.set(fmt, (cache = new Map()));
    const quarter = Math.floor(ms / QUARTER_MS) * QUARTER_MS;
    let entry = cache.get(quarter);
    if (!entry) {
      const p = partsOf(fmt, new Date(quarter));
      const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
      entry = { offset: wall - quarter, name: p.timeZoneName };
      cache.set(quarter, entry);
    }
    return entry;
  }

  const pad2 = (n) => String(n).padStart(2, '0');
  function wallClock(ms) {
    const d = new Date(ms);
    return { date: `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`,
      time: `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}` };
  }

  // ["2026-12-06 22:30:00 CET", "21:30:00 UTC"] (the UTC date too when it differs; one
  // part when the zone is UTC).
  function timeParts(iso, zone) {
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return [String(iso)];
    const { offset, name } = zoneOffset(zone || 'UTC', ms);
    const z = wallClock(ms + offset);
    const local = `${z.date} ${z.time} ${name}`;
    if (name === 'UTC') return [local];
    const u = wallClock(ms);
    return [local, `${u.date === z.date ? u.time : `${u.date} ${u.time}`} UTC`];
  }

  const fmtTime = (iso, zone) => (iso ? timeParts(iso, zone).join(' · ') : '—');

  // Each part stays on one line; a narrow column wraps between them.
  function timeEl(iso, zone) {
    if (!iso) return '—';
    const [local, utc] = timeParts(iso, zone);
    return h('time', { datetime: iso }, h('span', { class: 'tz' }, local),
      utc ? frag(' · ', h('span', { class: 'tz utc' }, utc)) : null);
  }

  function fmtDuration(s) {
    if (s == null || !Number.isFinite(s)) return '—';
    if (s < 0) s = 0;
    if (s < 1) return `${Math.round(s * 1000)}ms`;
    if (s < 60) return `${Math.round(s * 10) / 10}s`;
    const t = Math.round(s);
    const d = Math.floor(t / 86400);
    const hr = Math.floor((t % 86400) / 3600);
    const m = Math.floor((t % 3600) / 60);
    const sec = t % 60;
    if (t < 3600) return `${m}m ${sec}s`;
    if (t < 86400) return `${hr}h ${m}m`;
    return `${d}d ${hr}h`;
  }

  function secondsBetween(start, end) {
    if (!start) return null;
    const a = Date.parse(start);
    const b = end ? Date.parse(end) : Date.now();
    return Number.isFinite(a) && Number.isFinite(b) ? (b - a) / 1000 : null;
  }

  function fmtBytes(n) {
    if (n == null || !Number.isFinite(Number(n))) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
  }

  function summaryState(counts) {
    if (!counts) return 'none';
    for (const s of SUMMARY_PRIORITY) if (counts[s] > 0) return s;
    return 'none';
  }

  function countsText(counts) {
    if (!counts) return 'not in this run';
    const keys = COUNT_ORDER.filter((s) => counts[s] > 0)
      .concat(Object.keys(counts).filter((s) => !COUNT_ORDER.includes(s) && counts[s] > 0));
    return keys.length ? keys.map((s) => `${s} ${num(counts[s])}`).join(', ') : 'no instances';
  }

  const badge = (state, attr = 'state') => h('span', { class: 'badge', [`data-${attr}`]: state }, state || '—');
  const code = (text) => (text == null || text === '' ? '—' : h('code', null, text));
  const partLabel = (task, partition) => (partition && partition !== '-' ? `${task}[${partition}]` : task);

  const dagUrl = (dag) => `/ui/dags/${enc(dag)}`;
  const runUrl = (run) => `/ui/runs/${enc(run)}`;
  function logUrl(run, task, partition, attempt) {
    let url = `/ui/logs/${enc(run)}?task=${enc(task)}&partition=${enc(partition || '-')}`;
    if (attempt != null) url += `&attempt=${enc(attempt)}`;
    return url;
  }

  function legend(label, values, attr = 'state') {
    return h('ul', { class: 'legend', 'aria-label': label },
      values.map((v) => h('li', null, h('span', { class: 'swatch', [`data-${attr}`]: v, 'aria-hidden': 'true' }), v)));
  }

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives for this request only */ }
  }

  async function errorOf(res, token) {
    let code = `http_${res.status}`;
    let message = `${res.status} ${res.statusText}`.trim();
    try {
      const text = await res.text();
      try {
        const body = JSON.parse(text);
        if (body && body.error) {
          code = body.error.code || code;
          message = body.error.message || message;
        }
      } catch (e) {
        if (text.trim()) message = `${message}: ${text.trim().slice(0, 300)}`;
      }
    } catch (e) { /* body unreadable: keep the status line */ }
    const err = new ApiError(res.status, code, message);
    err.sentToken = token;
    return err;
  }

  async function request(url, accept) {
    const token = getToken();
    const headers = { Accept: accept };
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(url, { headers, cache: 'no-store', credentials: 'same-origin' });
    } catch (e) {
      throw new ApiError(0, 'network', `cannot reach batchd (${e.message})`);
    }
    if (!res.ok) throw await errorOf(res, token);
    return res;
  }

  async function api(path) {
    const res = await request(`/ui/api/v1${path}`, 'application/json');
    return res.json();
  }

  const isAuth = (err) => err && err.status === 401;

  // Pages that start from a run learn its DAG's zone from the DAG list, fetched alongside
  // the run (the run names its DAG only in its reply). The runs of a deleted DAG stay
  // readable: it is simply absent from the list, and its times are shown in UTC.
  function zoneIn(dags, dag) {
    const entry = dags.find((d) => d.dag === dag);
    return { known: !!entry, timezone: (entry && entry.timezone) || 'UTC' };
  }

  // The DAG's task order (the current version's), or [] for a deleted DAG.
  async function taskOrder(dag, known) {
    if (!known) return [];
    try {
      return (await api(`/dags/${enc(dag)}/grid?runs=1`)).tasks || [];
    } catch (err) {
      if (isAuth(err)) throw err;
      return [];
    }
  }

  // ---------------------------------------------------------------- errors, token, polling

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
  }

  function clearError() {
    if (ui.error.hidden) return;
    ui.error.hidden = true;
    ui.error.textContent = '';
  }

  function showTokenForm(message) {
    showError(message || 'This batchd requires a token.');
    ui.tokenForm.hidden = false;
    const input = ui.tokenForm.elements.token;
    input.value = '';
    input.focus();
  }

  // Returns whether polling should go on.
  function handleError(err) {
    if (isAuth(err)) {
      if (err.sentToken && getToken() === err.sentToken) setToken('');
      showTokenForm(err.message);
      return false;
    }
    showError(err && err.message ? err.message : String(err));
    return true;
  }

  const poller = { fn: null, timer: 0, busy: false, again: false, parked: false, lastHealth: 0 };

  function startPolling(fn) {
    poller.fn = fn;
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && poller.parked) pollNow();
    });
    pollNow();
  }

  function tick() {
    poller.timer = 0;
    if (document.visibilityState === 'visible') pollNow();
    else poller.parked = true;
  }

  // One poll: the page's loader (which renders and may return its next delay) and the
  // nav's health line. Never more than one poll in flight.
  async function pollNow() {
    clearTimeout(poller.timer);
    poller.timer = 0;
    poller.parked = false;
    if (poller.busy) { poller.again = true; return; }
    poller.busy = true;
    let delay = POLL_MS;
    let goOn = true;
    // The page is ready when its own data is drawn, without waiting for the nav's line.
    const health = refreshHealth();
    health.catch(() => {}); // handled below; this only keeps an early rejection quiet
    try {
      const next = await poller.fn();
      if (typeof next === 'number') delay = next;
      clearError();
      markReady();
      await health;
    } catch (err) {
      goOn = handleError(err);
    }
    poller.busy = false;
    if (poller.again) { poller.again = false; pollNow(); return; }
    if (goOn) poller.timer = setTimeout(tick, delay);
  }

  // Tests wait for body[data-ready=true]; data-ready-ms is when the page first showed its
  // data, in ms since navigation start.
  function markReady() {
    if (document.body.dataset.ready === 'true') return;
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = 'true';
  }

  async function refreshHealth() {
    if (Date.now() - poller.lastHealth < POLL_MS - 100) return;
    poller.lastHealth = Date.now();
    try {
      const hl = await api('/health');
      const kids = [`batchd ${hl.version} · up ${fmtDuration(hl.uptime_seconds)}`];
      if (hl.status !== 'ok') kids.push(' ', h('span', { class: 'badge warn', title: hl.store_error || '' }, hl.status));
      update(ui.health, hl, () => frag(kids));
    } catch (err) {
      if (isAuth(err)) { poller.lastHealth = 0; throw err; }
      update(ui.health, 'unavailable', () => frag('health unavailable'));
    }
  }

  // ---------------------------------------------------------------- shared widgets

  function runTitle(run, zone) {
    return [`run ${run.run_id}: ${run.state}`, `trigger ${run.trigger || '—'}`,
      `logical date ${fmtTime(run.logical_date, zone)}`, `started ${fmtTime(run.started_at, zone)}`,
      `duration ${fmtDuration(secondsBetween(run.started_at, run.ended_at))}`].join('\n');
  }

  // Columns are runs (oldest left), rows are tasks.
  function buildGrid(grid) {
    if (grid.error) return h('p', { class: 'muted' }, `grid unavailable: ${grid.error}`);
    const runs = (grid.runs || []).slice().reverse();
    if (!runs.length) return h('p', { class: 'muted' }, 'no runs yet');
    const zone = grid.timezone;
    const head = h('tr', null, h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Task')));
    for (const r of runs) {
      const title = runTitle(r, zone);
      head.append(h('th', { scope: 'col' }, h('a', { class: 'run-square', href: runUrl(r.run_id), title,
        'aria-label': title.replace(/\n/g, ', '), dataset: { run: r.run_id, state: r.state } })));
    }
    const body = h('tbody');
    for (const task of grid.tasks || []) {
      const tr = h('tr', null, h('th', { scope: 'row', class: 'grid-task', title: task }, task));
      for (const r of runs) {
        const counts = r.counts ? r.counts[task] : null;
        const state = summaryState(counts);
        const label = `${task} in run ${r.run_id}: ${state} (${countsText(counts)})`;
        tr.append(h('td', null, h('span', { class: 'cell', role: 'img', title: label, 'aria-label': label,
          dataset: { run: r.run_id, task, state } })));
      }
      body.append(tr);
    }
    return h('table', { class: 'grid' },
      h('caption', { class: 'sr-only' }, runs.length === 1 ? `Last run of ${grid.dag}`
        : `Last ${runs.length} runs of ${grid.dag}, oldest first`),
      h('thead', null, head), body);
  }

  function sloView(slo) {
    if (!slo || !slo.state || slo.state === 'none') return h('span', { class: 'slo muted', dataset: { slo: 'none' } }, 'no SLO');
    const bits = [`age ${slo.freshness_age || '—'}`];
    if (slo.freshness) bits.push(`freshness ${slo.freshness}`);
    if (slo.max_duration) bits.push(`max duration ${slo.max_duration}`);
    return h('span', { class: 'slo', dataset: { slo: slo.state } },
      h('span', { class: 'badge', dataset: { slo: slo.state } }, slo.state.replace(',', ', ')), ' ', bits.join(' · '));
  }

  // ---------------------------------------------------------------- DAGs page

  function dagsPage(query) {
    document.title = 'DAGs · batchd';
    const st = { page: Math.max(1, parseInt(query.get('page'), 10) || 1) };
    const t = dataTable('dags', 'DAGs', ['DAG', 'Schedule', 'Time zone', 'Paused', 'Next fire',
      `Freshness (SLO)`, `Last ${GRID_RUNS} runs`]);
    st.tbody = t.tbody;
    st.count = h('p', { id: 'dags-count', class: 'muted' });
    st.pager = h('nav', { class: 'pager', 'aria-label': 'DAG list pages' });
    st.empty = h('p', { class: 'empty muted', hidden: true }, 'No DAGs are registered.');
    ui.page.replaceChildren(h('h1', null, 'DAGs'), st.count,
      legend('Task state colours', SUMMARY_PRIORITY.concat('none')), t.wrap, st.empty, st.pager);

    return async () => {
      const dags = await api('/dags');
      const pages = Math.max(1, Math.ceil(dags.length / DAGS_PER_PAGE));
      const page = Math.min(st.page, pages);
      const shown = dags.slice((page - 1) * DAGS_PER_PAGE, page * DAGS_PER_PAGE);
      const grids = await Promise.all(shown.map((d) => api(`/dags/${enc(d.dag)}/grid?runs=${GRID_RUNS}`)
        .catch((err) => { if (isAuth(err)) throw err; return { error: err.message }; })));
      renderDags(st, { dags: shown, grids, page, pages, total: dags.length });
    };
  }

  function dagRow({ d, grid }) {
    const zone = d.timezone;
    return h('tr', { class: 'dag', dataset: { dag: d.dag, paused: d.paused ? 'true' : 'false' } },
      h('th', { scope: 'row' }, h('a', { href: dagUrl(d.dag) }, d.dag)),
      h('td', { class: 'nowrap' }, d.schedule ? code(d.schedule) : h('span', { class: 'muted' }, 'none')),
      h('td', null, zoneText(zone)),
      h('td', null, d.paused ? h('span', { class: 'badge', dataset: { paused: 'true' } }, 'paused') : ''),
      h('td', { class: 'when' }, timeEl(d.next_fire, zone)),
      h('td', null, sloView(d.slo)),
      h('td', { class: 'grid-cell' }, buildGrid(grid)));
  }

  function renderDags(st, data) {
    st.count.textContent = data.total === 1 ? '1 DAG' : `${num(data.total)} DAGs`;
    st.empty.hidden = data.total > 0;
    const items = data.dags.map((d, i) => ({ d, grid: data.grids[i] }));
    // Titles of running runs show a duration until now, so those rows are rebuilt each poll;
    // the age in seconds is not shown, so its ticking alone rebuilds nothing.
    const shownOnly = (k, v) => (k === 'freshness_age_seconds' ? undefined : v);
    syncRows(st.tbody, items, (x) => x.d.dag, dagRow,
      (x) => JSON.stringify([x, (x.grid.runs || []).some((r) => !r.ended_at) ? Date.now() : 0], shownOnly));
    update(st.pager, [data.page, data.pages], () => {
      if (data.pages <= 1) return frag();
      const link = (p, text, rel) => h('a', { href: p === 1 ? '/ui/' : `/ui/?page=${p}`, rel }, text);
      return frag(data.page > 1 ? link(data.page - 1, 'Previous page', 'prev') : null,
        h('span', { 'aria-current': 'page' }, ` page ${data.page} of ${data.pages} `),
        data.page < data.pages ? link(data.page + 1, 'Next page', 'next') : null);
    });
  }

  // ---------------------------------------------------------------- DAG page

  function dagPage(name) {
    document.title = `${name} · batchd`;
    const st = { name, graphVersion: null };
    st.intro = h('div', { id: 'dag-intro' });
    st.settings = h('div', { id: 'dag-settings-wrap' });
    st.graph = h('div', { id: 'graph', class: 'graph' });
    st.grid = h('div', { id: 'grid', class: 'grid-wrap' });
    const runs = dataTable('runs', 'Recent runs', ['Run', 'State', 'Trigger', 'Logical date', 'Started', 'Ended', 'Duration']);
    const tasks = dataTable('tasks', 'Tasks', ['Task', 'Command', 'Depends on', 'Trigger rule', 'Partitions', 'Pool', 'Priority', 'Retries'],
      { linkless: true });
    st.runs = runs.tbody;
    st.tasks = tasks.tbody;
    st.noRuns = h('p', { class: 'empty muted', hidden: true }, 'No runs yet.');
    ui.page.replaceChildren(h('h1', null, name), st.intro,
      section('Task graph', legend('Task state colours (latest run)', SUMMARY_PRIORITY.concat('none')), st.graph),
      section(`Last ${GRID_RUNS} runs`, st.grid),
      section('Recent runs', runs.wrap, st.noRuns),
      section('Tasks', tasks.wrap),
      section('Settings', st.settings));

    return async () => {
      const path = `/dags/${enc(name)}`;
      const [dag, grid] = await Promise.all([api(path), api(`${path}/grid?runs=${GRID_RUNS}`)]);
      if (st.graphVersion !== dag.version) {
        st.graphVersion = dag.version;
        await loadGraph(st);
      }
      renderDag(st, dag, grid);
    };
  }

  // Parsing already reports inline styles and handlers to the console under the page's
  // CSP, so they are cut from the text first (Graphviz writes quotes inside values as
  // &quot;, so a value never contains '"').
  const stripInline = (text) => text.replace(/<style[\s\S]*?<\/style>/gi, '')
    .replace(/\s(?:style|on[a-z]+)\s*=\s*"[^"]*"/gi, '');

  // The SVG comes from our own daemon, but task names are untrusted: keep only inert markup.
  function sanitizeSvg(svg) {
    for (const el of Array.from(svg.querySelectorAll('script, foreignObject, style'))) el.remove();
    for (const el of [svg, ...svg.querySelectorAll('*')]) {
      for (const attr of Array.from(el.attributes)) {
        const n = attr.name.toLowerCase();
        const isHref = n === 'href' || n === 'xlink:href';
        if (n.startsWith('on') || n === 'style' || (isHref && !/^(\/|#)/.test(attr.value.trim()))) el.removeAttribute(attr.name);
      }
    }
  }

  async function loadGraph(st) {
    try {
      const res = await request(`/ui/graph/${enc(st.name)}.svg`, 'image/svg+xml');
      if (res.status === 202) {
        // A big graph is still being laid out: the next poll asks again.
        st.graphVersion = null;
        st.graph.replaceChildren(h('p', { class: 'muted' }, 'Laying out the graph…'));
        return;
      }
      const doc = new DOMParser().parseFromString(stripInline(await res.text()), 'image/svg+xml');
      const root = doc.documentElement;
      if (!root || root.localName !== 'svg' || doc.getElementsByTagName('parsererror').length) {
        throw new Error('the graph is not a valid SVG document');
      }
      sanitizeSvg(root); // before import: the page's CSP reports handler attributes as they arrive
      const svg = document.importNode(root, true);
      svg.setAttribute('role', 'img');
      svg.setAttribute('aria-label', `Task graph of ${st.name}`);
      for (const g of svg.querySelectorAll('g.node')) {
        const title = g.querySelector('title');
        g.dataset.task = g.id.startsWith('task-') ? g.id.slice(5) : (title ? title.textContent : '');
        g.dataset.state = 'none';
      }
      st.graph.replaceChildren(svg);
    } catch (err) {
      if (isAuth(err)) { st.graphVersion = null; throw err; }
      st.graph.replaceChildren(h('p', { class: 'muted' }, `graph unavailable: ${err.message}`));
    }
  }

  function colourGraph(st, latest) {
    for (const g of st.graph.querySelectorAll('g.node')) {
      const task = g.dataset.task;
      const counts = latest && latest.counts ? latest.counts[task] : null;
      const state = summaryState(counts);
      if (g.dataset.state === state) continue;
      g.dataset.state = state;
      const title = g.querySelector('title');
      if (title) title.textContent = `${task}: ${state}${latest ? ` (${countsText(counts)})` : ''}`;
    }
  }

  function fmtPartitions(p) {
    if (!p) return '—';
    if (p.values) {
      const vals = p.values.slice(0, 20).join(', ');
      return `values: ${vals}${p.values.length > 20 ? `, … (${num(p.values.length)} in all)` : ''}`;
    }
    if (p.range) return `range ${p.range[0]}..${p.range[1]}`;
    if (p.command != null) return frag('command: ', code(p.command));
    return JSON.stringify(p);
  }

  function dagSettings(dag) {
    const zone = dag.timezone;
    const slo = dag.slo || {};
    const params = Object.entries(dag.params || {});
    const fires = dag.next_fires || [];
    const misses = slo.misses || {};
    const recent = slo.recent_misses || [];
    return frag(
      dl('dag-settings', [
        ['Version', h('code', { title: dag.hash || '' }, dag.version)],
        ['Origin', frag(dag.origin || '—', dag.source_path ? frag(' · ', code(dag.source_path)) : null)],
        ['Schedule', dag.schedule ? code(dag.schedule) : 'none (triggered by hand)'],
        ['Time zone', zoneText(zone)],
        ['Catch-up', dag.catchup ? 'yes' : 'no'],
        ['Max active runs', num(dag.max_active_runs)],
        ['Max active tasks', dag.max_active_tasks == null ? undefined : num(dag.max_active_tasks)],
        ['Paused', dag.paused ? h('span', { class: 'badge', dataset: { paused: 'true' } }, 'paused') : 'no'],
        ['Last success', timeEl(dag.last_success, zone)],
        ['Next fires', fires.length ? h('ol', { id: 'next-fires' }, fires.map((f) => h('li', null, timeEl(f, zone)))) : 'none'],
        ['SLO', sloView(slo)],
        ['Runs over max duration', slo.state && slo.state !== 'none' ? num(slo.runs_over_duration) : undefined],
        ['SLO misses', slo.state && slo.state !== 'none'
          ? `freshness ${num(misses.freshness || 0)} · duration ${num(misses.duration || 0)}` : undefined],
      ]),
      recent.length ? h('div', null, h('h3', null, 'Recent SLO misses'), h('ul', { id: 'slo-misses' },
        recent.map((m) => h('li', null, badge(m.kind, 'slo'), ' ', timeEl(m.at, zone), ' ', m.detail || '')))) : null,
      h('h3', null, 'Params'),
      params.length ? h('table', { id: 'params', class: 'data compact' },
        h('caption', { class: 'sr-only' }, 'Params'),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Default'))),
        h('tbody', null, params.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, code(v))))))
        : h('p', { class: 'muted' }, 'none'));
  }

  function runRow(run, zone) {
    return h('tr', { class: 'run', dataset: { run: run.run_id, state: run.state } },
      h('th', { scope: 'row' }, h('a', { href: runUrl(run.run_id) }, h('code', null, run.run_id))),
      h('td', null, badge(run.state)),
      h('td', null, run.trigger || '—'),
      h('td', { class: 'when' }, timeEl(run.logical_date, zone)),
      h('td', { class: 'when' }, timeEl(run.started_at, zone)),
      h('td', { class: 'when' }, timeEl(run.ended_at, zone)),
      h('td', { class: 'num' }, fmtDuration(secondsBetween(run.started_at, run.ended_at))));
  }

  function taskRow(t) {
    return h('tr', { class: 'task', dataset: { task: t.task } },
      h('th', { scope: 'row' }, t.task),
      h('td', null, code(t.command)),
      h('td', null, t.depends_on && t.depends_on.length ? t.depends_on.join(', ') : '—'),
      h('td', null, t.trigger_rule || '—'),
      h('td', null, fmtPartitions(t.partitions)),
      h('td', null, t.pool || '—'),
      h('td', { class: 'num' }, num(t.priority)),
      h('td', { class: 'num' }, num(t.retries)));
  }

  function renderDag(st, dag, grid) {
    const zone = dag.timezone;
    update(st.intro, [dag.description, dag.paused], () => frag(
      dag.description ? h('p', { id: 'dag-description' }, dag.description) : null,
      dag.paused ? h('p', null, h('span', { class: 'badge', dataset: { paused: 'true' } }, 'paused'),
        ' no scheduled runs start while paused') : null));
    const { recent_runs: _recent, ...settings } = dag;
    update(st.settings, settings, () => dagSettings(dag));
    colourGraph(st, (grid.runs || [])[0]);
    const active = (grid.runs || []).some((r) => !r.ended_at);
    update(st.grid, [grid, active ? Date.now() : 0], () => buildGrid(grid));
    const runs = grid.runs || [];
    st.noRuns.hidden = runs.length > 0;
    syncRows(st.runs, runs, (r) => r.run_id, (r) => runRow(r, zone),
      (r) => JSON.stringify([r.state, r.started_at, r.ended_at, r.ended_at ? 0 : Date.now(), zone]));
    syncRows(st.tasks, dag.tasks || [], (t) => t.task, taskRow);
  }

  // ---------------------------------------------------------------- Run page

  function runPage(runId) {
    document.title = `Run ${runId} · batchd`;
    const st = { id: runId, cursor: null, stack: [], info: null, order: null };
    st.summary = h('div', { id: 'run-summary-wrap' });
    st.counts = h('div', { id: 'task-counts', class: 'task-counts-list' });
    const failed = dataTable('failed', 'Failed partitions', ['Task', 'Partition', 'State', 'Attempts', 'Exit code', 'Reason', 'Ended', 'Log']);
    st.failed = failed.tbody;
    failed.wrap.classList.add('scroll');
    st.failedNote = h('p', { class: 'muted' });
    st.gantt = h('div', { id: 'gantt', class: 'gantt', role: 'list', 'aria-label': 'Instances and their attempts' });
    st.axis = h('div', { class: 'gantt-axis' });
    st.pageInfo = h('span', { class: 'page-info' });
    const button = (id, text, onClick) => {
      const b = h('button', { type: 'button', id }, text);
      b.addEventListener('click', onClick);
      return b;
    };
    // Moving disables the buttons until the new page is shown, so a double click cannot
    // push the same cursor twice.
    const go = (move) => () => {
      move();
      for (const b of [st.first, st.prev, st.next]) b.disabled = true;
      pollNow();
    };
    st.first = button('gantt-first', 'First page', go(() => { st.cursor = null; st.stack = []; }));
    st.prev = button('gantt-prev', 'Previous page', go(() => { st.cursor = st.stack.pop() ?? null; }));
    st.next = button('gantt-next', 'Next page', go(() => { st.stack.push(st.cursor); st.cursor = st.nextAfter; }));
    ui.page.replaceChildren(h('h1', null, 'Run ', h('code', null, runId)), st.summary,
      section('Tasks', legend('Instance state colours', COUNT_ORDER), st.counts),
      section('Failed partitions', st.failedNote, failed.wrap),
      section('Timeline', legend('Attempt outcome colours', OUTCOMES, 'outcome'),
        h('div', { class: 'pager', id: 'gantt-pager' }, st.first, st.prev, st.next, st.pageInfo),
        st.axis, st.gantt));

    return async () => {
      const base = `/runs/${enc(runId)}`;
      let q = `?limit=${GANTT_LIMIT}&history=true`;
      if (st.cursor != null) q += `&after=${enc(st.cursor)}`;
      // Failed only: the store keeps an index of those, so this costs the same on any run
      // (upstream_failed ones are counted in the bars above).
      const cursor = st.cursor;
      // The task order only sorts the count bars: it is fetched after the first render.
      const [run, bad, dags, order] = await Promise.all([api(base + q),
        api(`${base}?state=failed&limit=${FAILED_LIMIT}&history=false`),
        st.info ? null : api('/dags'), st.info && !st.order ? taskOrder(st.dag, st.info.known) : null]);
      if (dags) { st.info = zoneIn(dags, run.dag); st.dag = run.dag; }
      if (order) st.order = order;
      if (cursor === st.cursor) renderRun(st, run, bad); // else a page button was used meanwhile
    };
  }

  function runSummary(run, zone) {
    return dl('run-summary', [
      ['DAG', h('a', { href: dagUrl(run.dag) }, run.dag)],
      ['State', badge(run.state)],
      ['Trigger', run.trigger || '—'],
      ['Run key', code(run.run_key)],
      ['DAG version', run.dag_version ? code(run.dag_version) : undefined],
      ['Logical date', timeEl(run.logical_date, zone)],
      ['Data interval', run.data_interval_start || run.data_interval_end
        ? frag(timeEl(run.data_interval_start, zone), ' to ', timeEl(run.data_interval_end, zone)) : null],
      ['Started', timeEl(run.started_at, zone)],
      ['Ended', timeEl(run.ended_at, zone)],
      ['Duration', fmtDuration(secondsBetween(run.started_at, run.ended_at))],
      ['Error', run.error ? h('span', { class: 'error-text' }, run.error) : undefined],
    ]);
  }

  function taskCounts(task, counts) {
    const total = Object.values(counts).reduce((a, b) => a + (b > 0 ? b : 0), 0);
    const states = COUNT_ORDER.filter((s) => counts[s] > 0)
      .concat(Object.keys(counts).filter((s) => !COUNT_ORDER.includes(s) && counts[s] > 0));
    const bar = h('div', { class: 'tc-bar', role: 'img', 'aria-label': `${task}: ${countsText(counts)}` });
    for (const s of states) {
      const seg = h('span', { class: 'seg', title: `${s}: ${num(counts[s])}`, dataset: { state: s } }, num(counts[s]));
      seg.style.width = `${(counts[s] / total) * 100}%`;
      bar.append(seg);
    }
    return h('div', { class: 'task-counts', dataset: { task } },
      h('div', { class: 'tc-name', title: task }, task), bar,
      h('div', { class: 'tc-text' }, `${num(total)} · ${countsText(counts)}`));
  }

  function failedRow(t, runId, zone) {
    const last = t.last_attempt;
    return h('tr', { dataset: { task: t.task, partition: t.partition, state: t.state } },
      h('th', { scope: 'row' }, t.task),
      h('td', null, t.partition),
      h('td', null, badge(t.state)),
      h('td', { class: 'num' }, num(t.attempts)),
      h('td', { class: 'num' }, t.exit_code == null ? '—' : String(t.exit_code)),
      h('td', { class: 'reason' }, t.reason || '—'),
      h('td', { class: 'when' }, timeEl(t.ended_at, zone)),
      h('td', null, t.attempts > 0 || last
        ? h('a', { href: logUrl(runId, t.task, t.partition, last ? last.number : null) }, 'log') : '—'));
  }

  function attemptTitle(label, a, zone, seconds) {
    const lines = [`${label} attempt ${a.number}: ${a.outcome}`];
    if (a.reason && a.reason !== a.outcome) lines.push(`reason: ${a.reason}`);
    lines.push(`started ${fmtTime(a.started_at, zone)}`, `ended ${a.ended_at ? fmtTime(a.ended_at, zone) : 'still running'}`,
      `duration ${fmtDuration(a.duration_seconds != null ? a.duration_seconds : seconds)}`);
    return lines.join('\n');
  }

  // One row per instance, one bar per attempt, positioned in % of the page's time span.
  // Everything is computed from the data first, so building the rows never reads layout.
  function buildGantt(st, run, zone) {
    const now = Date.now();
    let t0 = Infinity;
    let t1 = -Infinity;
    const rows = (run.tasks || []).map((t) => {
      const hist = t.history || (t.last_attempt ? [t.last_attempt] : []);
      const attempts = [];
      for (const a of hist) {
        const s = Date.parse(a.started_at);
        if (!Number.isFinite(s)) continue;
        const e = a.ended_at ? Date.parse(a.ended_at) : now;
        attempts.push({ a, s, e: Math.max(e, s) });
        if (s < t0) t0 = s;
        if (Math.max(e, s) > t1) t1 = Math.max(e, s);
      }
      return { t, attempts };
    });
    const span = Math.max(t1 - t0, 1);
    const f = document.createDocumentFragment();
    for (const { t, attempts } of rows) {
      const label = partLabel(t.task, t.partition);
      const track = h('div', { class: 'track' });
      for (const { a, s, e } of attempts) {
        // The title is also the link's accessible name.
        const bar = h('a', { class: 'bar', href: logUrl(run.run_id, t.task, t.partition, a.number),
          title: attemptTitle(label, a, zone, (e - s) / 1000), dataset: { attempt: a.number, outcome: a.outcome } });
        bar.style.left = `${((s - t0) / span) * 100}%`;
        bar.style.width = `${((e - s) / span) * 100}%`;
        track.append(bar);
      }
      const total = t.total_seconds != null ? t.total_seconds
        : attempts.reduce((sum, x) => sum + (x.e - x.s) / 1000, 0);
      f.append(h('div', { class: 'row', role: 'listitem', dataset: { task: t.task, partition: t.partition, state: t.state } },
        h('div', { class: 'label', title: label }, label),
        track,
        h('div', { class: 'meta' }, badge(t.state), ' ', h('span', { class: 'total', title: 'total of all attempts' },
          attempts.length ? fmtDuration(total) : '—'))));
    }
    st.axis.replaceChildren(Number.isFinite(t0)
      ? frag(h('span', null, timeEl(new Date(t0).toISOString(), zone)), h('span', null, timeEl(new Date(t1).toISOString(), zone)))
      : h('span', { class: 'muted' }, run.tasks && run.tasks.length ? 'no attempts on this page yet' : 'no instances'));
    return f;
  }

  function renderRun(st, run, bad) {
    const zone = st.info.timezone;
    document.title = `Run ${run.run_id} · ${run.dag} · batchd`;
    const { tasks: _t, more: _m, next_after: _n, counts: _c, ...summary } = run;
    update(st.summary, [summary, zone, run.ended_at ? 0 : Math.floor(Date.now() / 1000)], () => runSummary(run, zone));

    const counts = run.counts || {};
    const known = st.order || [];
    const order = known.filter((t) => counts[t]).concat(Object.keys(counts).filter((t) => !known.includes(t)));
    update(st.counts, [counts, order], () => frag(order.length
      ? order.map((t) => taskCounts(t, counts[t])) : h('p', { class: 'muted' }, 'no instances')));

    const failedRows = bad.tasks || [];
    syncRows(st.failed, failedRows, (t) => `${t.task}\u0000${t.partition}`, (t) => failedRow(t, run.run_id, zone));
    const failedTotal = Object.values(counts).reduce((a, c) => a + (c.failed || 0) + (c.upstream_failed || 0), 0);
    st.failedNote.textContent = !failedRows.length ? 'No failed partitions.'
      : bad.more ? `Showing the first ${num(failedRows.length)} of ${num(failedTotal)} failed or upstream_failed instances.` : '';

    st.nextAfter = run.more ? run.next_after : null;
    const instances = Object.values(counts).reduce((a, c) => a + Object.values(c).reduce((x, y) => x + y, 0), 0);
    st.first.disabled = st.cursor == null;
    st.prev.disabled = st.cursor == null;
    st.next.disabled = st.nextAfter == null;
    // The stack holds the cursors of the pages before this one.
    st.pageInfo.textContent = ` page ${st.stack.length + 1} · ${num((run.tasks || []).length)} of ${num(instances)} instances`;
    const running = (run.tasks || []).some((t) => t.state === 'running' || (t.history || []).some((a) => !a.ended_at));
    update(st.gantt, [run.tasks, zone, running ? Date.now() : 0], () => buildGantt(st, run, zone));
  }

  // ---------------------------------------------------------------- Dead letters page

  function deadLettersPage() {
    document.title = 'Dead letters · batchd';
    const st = { zones: null };
    const t = dataTable('dead-letters', 'Dead letters', ['DAG', 'Run', 'Task', 'Partition', 'Attempts',
      'Exit code', 'Reason', 'Ended at', 'Idempotency key', 'Log']);
    st.tbody = t.tbody;
    st.count = h('p', { class: 'muted' });
    ui.page.replaceChildren(h('h1', null, 'Dead letters'),
      h('p', null, 'Instances that failed after their last retry and have not been retried since.'),
      st.count, t.wrap);

    return async () => {
      const [rows, dags] = await Promise.all([api('/failed'), st.zones ? null : api('/dags')]);
      if (dags) st.zones = new Map(dags.map((d) => [d.dag, d.timezone]));
      renderDeadLetters(st, rows);
    };
  }

  function deadLetterRow(r, zone) {
    return h('tr', { dataset: { run: r.run_id, task: r.task, partition: r.partition } },
      h('td', null, h('a', { href: dagUrl(r.dag) }, r.dag)),
      h('td', null, h('a', { href: runUrl(r.run_id) }, h('code', null, r.run_id))),
      h('th', { scope: 'row' }, r.task),
      h('td', null, r.partition),
      h('td', { class: 'num' }, num(r.attempts)),
      h('td', { class: 'num' }, r.exit_code == null ? '—' : String(r.exit_code)),
      h('td', { class: 'reason' }, r.reason || '—'),
      h('td', { class: 'when' }, timeEl(r.ended_at, zone)),
      h('td', null, code(r.idempotency_key)),
      h('td', null, h('a', { href: logUrl(r.run_id, r.task, r.partition) }, 'log')));
  }

  function renderDeadLetters(st, rows) {
    st.count.textContent = rows.length ? `${num(rows.length)} dead letter${rows.length === 1 ? '' : 's'}` : 'No dead letters.';
    syncRows(st.tbody, rows, (r) => `${r.run_id}\u0000${r.task}\u0000${r.partition}`,
      (r) => deadLetterRow(r, st.zones.get(r.dag) || 'UTC'));
  }

  // ---------------------------------------------------------------- Logs page

  function logsPage(runId, query) {
    const task = query.get('task');
    const partition = query.get('partition') || '-';
    const asked = query.get('attempt');
    if (!task) throw new Error('A log page needs ?task=TASK (and &partition=P, &attempt=N).');
    const label = partLabel(task, partition);
    document.title = `Log ${label} · run ${runId} · batchd`;
    const st = { runId, task, partition, asked: asked ? Number(asked) : null, attempt: null, info: null,
      dag: null, attemptsAt: 0, started: false, complete: false, offset: 0, buf: '', base: 0,
      shownStart: -1, shownEnd: 0, decoder: new TextDecoder('utf-8'), followTouched: false };
    st.links = h('p', { class: 'muted' });
    st.attempts = h('nav', { id: 'attempts', class: 'attempts', 'aria-label': 'Attempts of this instance' });
    st.infoBox = h('div', { id: 'attempt-info-wrap' });
    st.follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
    st.tail = h('input', { type: 'checkbox', id: 'tail', checked: true });
    st.status = h('span', { id: 'log-status', class: 'muted', 'aria-live': 'polite' });
    st.log = h('pre', { id: 'log', class: 'log', tabindex: '0', 'aria-label': `Log of ${label}` });
    st.follow.addEventListener('change', () => {
      st.followTouched = true;
      if (st.follow.checked) { scrollLog(st); pollNow(); }
    });
    st.tail.addEventListener('change', () => { showLog(st); scrollLog(st); renderLogStatus(st); });
    ui.page.replaceChildren(h('h1', null, 'Log of ', h('code', null, label)), st.links, st.attempts, st.infoBox,
      h('div', { class: 'log-controls' },
        h('label', null, st.follow, ' Follow'),
        h('label', null, st.tail, ` Tail (last ${LOG_TAIL / 1024} KiB)`), st.status),
      st.log);

    return async () => {
      const first = !st.dag;
      const wantAttempts = !st.started || Date.now() - st.attemptsAt >= POLL_MS - 100;
      const [run, dags, list] = await Promise.all([first ? api(`/runs/${enc(runId)}?limit=0`) : null,
        first ? api('/dags') : null,
        wantAttempts ? api(`/runs/${enc(runId)}/attempts?task=${enc(task)}&partition=${enc(partition)}`) : null]);
      if (first) {
        st.info = zoneIn(dags, run.dag);
        st.dag = run.dag;
      }
      if (list) applyAttempts(st, list);
      if (st.attempt != null && (!st.started || (st.follow.checked && !st.complete))) {
        await readLog(st);
        st.started = true;
      }
      renderLogStatus(st);
      return st.follow.checked && !st.complete && st.attempt != null ? FOLLOW_MS : POLL_MS;
    };
  }

  function applyAttempts(st, list) {
    st.attemptsAt = Date.now();
    if (st.attempt == null && list.length) {
      const pick = st.asked != null ? list.find((a) => a.attempt === st.asked) : list[list.length - 1];
      if (!pick) {
        throw new ApiError(404, 'not_found', `attempt ${st.asked} does not exist (attempts: ${list.map((a) => a.attempt).join(', ')})`);
      }
      st.attempt = pick.attempt;
    }
    const current = list.find((a) => a.attempt === st.attempt);
    renderLogs(st, list, current);
  }

  function renderLogs(st, list, a) {
    const zone = st.info.timezone;
    update(st.links, [st.dag], () => frag('Run ', h('a', { href: runUrl(st.runId) }, h('code', null, st.runId)),
      ' of DAG ', h('a', { href: dagUrl(st.dag) }, st.dag)));
    update(st.attempts, [list.map((x) => [x.attempt, x.outcome]), st.attempt], () => frag(
      h('span', null, 'Attempts: '),
      list.length ? list.map((x) => h('a', { href: logUrl(st.runId, st.task, st.partition, x.attempt),
        'aria-current': x.attempt === st.attempt ? 'page' : null, dataset: { attempt: x.attempt, outcome: x.outcome } },
      `#${x.attempt} `, badge(x.outcome, 'outcome'))) : h('span', { class: 'muted' }, 'none yet')));
    update(st.infoBox, [a, zone, a && !a.ended_at ? Math.floor(Date.now() / 1000) : 0], () => {
      if (!a) return h('p', { class: 'muted' }, 'This instance has not started an attempt yet.');
      document.title = `Log ${partLabel(st.task, st.partition)} attempt ${a.attempt} · run ${st.runId} · batchd`;
      return dl('attempt-info', [
        ['Attempt', `${a.attempt} of ${list.length}`],
        ['Outcome', badge(a.outcome, 'outcome')],
        ['Exit code', a.exit_code == null ? '—' : String(a.exit_code)],
        ['Signal', a.signal || '—'],
        ['Reason', a.reason || '—'],
        ['Error', a.error ? h('span', { class: 'error-text' }, a.error) : undefined],
        ['Started', timeEl(a.started_at, zone)],
        ['Ended', timeEl(a.ended_at, zone)],
        ['Duration', fmtDuration(a.duration_seconds != null ? a.duration_seconds : secondsBetween(a.started_at, a.ended_at))],
        ['CPU time', a.cpu_seconds == null ? '—' : fmtDuration(a.cpu_seconds)],
        ['Max RSS', fmtBytes(a.max_rss_bytes)],
        ['DAG version', a.dag_version ? code(a.dag_version) : undefined],
        ['Log file', a.log ? code(a.log) : undefined],
      ]);
    });
  }

  // Reads from the next offset until the daemon has nothing more (on the first load that
  // is the whole log, of which only the last LOG_KEEP characters are kept).
  async function readLog(st) {
    const url = `/ui/api/v1/runs/${enc(st.runId)}/logs?task=${enc(st.task)}&partition=${enc(st.partition)}&attempt=${enc(st.attempt)}`;
    for (;;) {
      const res = await request(`${url}&offset=${st.offset}`, 'text/plain');
      const bytes = await res.arrayBuffer();
      const size = Number(res.headers.get('X-Batchd-Size'));
      // A long log shown as a tail: skip to its last LOG_TAIL bytes rather than read it all.
      if (st.offset === 0 && !st.skipped && st.tail.checked && Number.isFinite(size) && size > LOG_CHUNK) {
        st.skipped = true;
        st.offset = size - LOG_TAIL;
        st.base = st.offset;
        continue;
      }
      const next = Number(res.headers.get('X-Batchd-Next-Offset'));
      st.complete = res.headers.get('X-Batchd-Complete') === 'true';
      const before = st.offset;
      st.offset = Number.isFinite(next) && next >= before ? next : before + bytes.byteLength;
      let text = bytes.byteLength ? st.decoder.decode(bytes, { stream: true }) : '';
      // A finished log is read to its end; a growing one up to the first short reply, so a
      // chatty process cannot keep this loop going.
      const atEnd = bytes.byteLength === 0 || st.offset <= before || (!st.complete && bytes.byteLength < LOG_CHUNK);
      if (atEnd && st.complete) text += st.decoder.decode();
      if (text) appendLog(st, text);
      if (!st.followTouched) st.follow.checked = !st.complete;
      if (atEnd) break;
    }
    scrollLog(st);
  }

  function appendLog(st, text) {
    st.buf += text;
    if (st.buf.length > LOG_KEEP) {
      const cut = st.buf.length - LOG_KEEP;
      st.buf = st.buf.slice(cut);
      st.base += cut;
    }
    showLog(st);
  }

  // Appends only the new text when the shown window did not move; otherwise replaces it.
  function showLog(st) {
    let start = 0;
    if (st.tail.checked && st.buf.length > LOG_TAIL) {
      start = st.buf.length - LOG_TAIL;
      const nl = st.buf.indexOf('\n', start);
      if (nl !== -1 && nl - start < 4096) start = nl + 1; // begin at a whole line
    }
    const absStart = st.base + start;
    const absEnd = st.base + st.buf.length;
    if (absStart === st.shownStart && st.shownEnd >= st.base) {
      if (absEnd > st.shownEnd) st.log.append(st.buf.slice(st.shownEnd - st.base));
    } else {
      st.log.textContent = st.buf.slice(start);
    }
    st.shownStart = absStart;
    st.shownEnd = absEnd;
  }

  function scrollLog(st) {
    if (st.follow.checked || !st.started) st.log.scrollTop = st.log.scrollHeight;
  }

  function renderLogStatus(st) {
    const bits = [];
    if (st.attempt == null) bits.push('waiting for the first attempt');
    else {
      bits.push(`${fmtBytes(st.offset)} read`);
      if (st.shownStart > 0) bits.push('earlier output not shown');
      bits.push(st.complete ? 'attempt ended' : st.follow.checked ? 'following' : 'paused (Follow is off)');
    }
    st.status.textContent = ` ${bits.join(' · ')}`;
    st.follow.disabled = st.complete;
  }

  // ---------------------------------------------------------------- routing

  function decode(part) {
    try { return decodeURIComponent(part); } catch (e) { return part; }
  }

  function route(pathname, query) {
    const parts = pathname.split('/').filter(Boolean).map(decode);
    if (parts[0] !== 'ui') return { page: 'not-found' };
    const [, kind, arg, extra] = parts;
    if (!kind || (kind === 'dags' && !arg)) return { page: 'dags', nav: 'dags', start: () => dagsPage(query) };
    if (extra === undefined && arg) {
      if (kind === 'dags') return { page: 'dag', nav: 'dags', start: () => dagPage(arg) };
      if (kind === 'runs') return { page: 'run', start: () => runPage(arg) };
      if (kind === 'logs') return { page: 'logs', start: () => logsPage(arg, query) };
    }
    if (kind === 'dead-letters' && !arg) return { page: 'dead-letters', nav: 'dead-letters', start: deadLettersPage };
    return { page: 'not-found' };
  }

  function boot() {
    ui.error = document.getElementById('error');
    ui.page = document.getElementById('page');
    ui.health = document.getElementById('health');
    ui.tokenForm = document.getElementById('token-form');
    ui.tokenForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = ui.tokenForm.elements.token.value.trim();
      if (!token) return;
      setToken(token);
      ui.tokenForm.elements.token.value = '';
      ui.tokenForm.hidden = true;
      clearError();
      pollNow();
    });
    const r = route(location.pathname, new URLSearchParams(location.search));
    ui.page.dataset.page = r.page;
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    }
    if (!r.start) {
      document.title = 'Not found · batchd';
      ui.page.replaceChildren(h('h1', null, 'Not found'), h('p', null, h('a', { href: '/ui/' }, 'Back to the DAGs')));
      showError(`There is no page at ${location.pathname}.`);
      return;
    }
    try {
      startPolling(r.start());
    } catch (err) {
      showError(err.message);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
