// shiftcast operator page: reads GET /v1/admin/stream (Server-Sent Events,
// parsed by hand because EventSource cannot send the bearer token), drives
// the admin routes and the eligibility lookup. Plain JS, no dependencies.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'shiftcast.adminToken';
  const WINDOW_MS = 5000; // rates are averaged over this window
  const HISTORY = 60;     // samples kept for the sparklines
  const STALL_MS = 5000;  // no data for this long: reconnect
  const num = new Intl.NumberFormat('en-US');
  const rate1 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let current = null;  // AbortController of the running stream
  let timer = 0;       // pending reconnect
  let failures = 0;    // consecutive failed connections, for the backoff
  let samples = [];    // {t, events, deliveries, notifications}
  let holdPausedUntil = 0; // after a control click, snapshots already in flight may be stale
  let recentKey = '';

  class AuthError extends Error {}
  class DisabledError extends Error {}

  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    n.append(...kids.filter((k) => k !== null && k !== undefined));
    return n;
  }
  function setText(id, v) {
    const n = $(id);
    const s = String(v);
    if (n.textContent !== s) n.textContent = s;
  }
  function show(id, on) { $(id).hidden = !on; }
  function fail(id, msg) { setText(id, msg || ''); show(id, !!msg); }
  function setConn(state, msg) { const c = $('conn'); c.dataset.state = state; setText('conn', msg); }
  function auth() { return { Authorization: 'Bearer ' + token }; }
  function fmtTime(s) { const d = new Date(s); return isNaN(d) ? String(s ?? '') : when.format(d); }
  async function errorText(res) {
    const body = await res.json().catch(() => null);
    return (body && body.error && body.error.message) || 'HTTP ' + res.status;
  }

  // ---- connection -------------------------------------------------------

  function stop() {
    clearTimeout(timer);
    if (current) current.abort();
    current = null;
  }

  function askToken(msg) {
    stop();
    show('live', false);
    show('signout', false);
    show('auth', true);
    fail('auth-error', msg);
    setConn('idle', 'not connected');
    $('token').focus();
  }

  function forget(msg) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(msg);
  }

  function disabled() {
    stop();
    show('auth', false);
    show('live', false);
    show('signout', false);
    show('admin-disabled', true);
    setConn('off', 'admin disabled');
  }

  function connect() {
    stop();
    show('auth', false);
    show('live', true);
    show('signout', true);
    samples = [];
    failures = 0;
    run();
  }

  async function run() {
    const c = new AbortController();
    current = c;
    setConn('connecting', 'connecting…');
    let clean = false;
    try {
      await stream(c);
      clean = true; // the server ended it: reconnect promptly
    } catch (err) {
      if (current !== c) return; // stopped or replaced
      if (err instanceof AuthError) { forget('The token was rejected.'); return; }
      if (err instanceof DisabledError) { disabled(); return; }
    }
    if (current !== c) return;
    const delay = clean ? 500 : Math.min(30000, 1000 * 2 ** Math.min(failures++, 5));
    setConn('down', `disconnected, retrying in ${Math.ceil(delay / 1000)} s`);
    timer = setTimeout(run, delay);
  }

  async function stream(c) {
    const res = await fetch('/v1/admin/stream', {
      headers: { ...auth(), Accept: 'text/event-stream' }, cache: 'no-store', signal: c.signal,
    });
    if (res.status === 401) throw new AuthError();
    if (res.status === 404) throw new DisabledError();
    if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let stall = 0;
    const arm = () => { clearTimeout(stall); stall = setTimeout(() => c.abort(), STALL_MS); };
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        arm();
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          dispatch(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } finally {
      clearTimeout(stall);
      reader.cancel().catch(() => {});
    }
  }

  function dispatch(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const k = line.indexOf(':');
      const field = k < 0 ? line : line.slice(0, k);
      let v = k < 0 ? '' : line.slice(k + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (field === 'event') event = v;
      else if (field === 'data') data.push(v);
    }
    if (event !== 'snapshot' || !data.length) return;
    render(JSON.parse(data.join('\n')));
    failures = 0;
    setConn('live', 'live');
  }

  // ---- rendering --------------------------------------------------------

  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

  function render(s) {
    const c = s.counters || {};
    const ev = c.events_handled || {};
    const cur = {
      t: Date.parse(s.time),
      events: sum(ev) - (ev.retry || 0), // a retry is the same event again, later
      deliveries: sum(c.deliveries),
      notifications: c.notifications_built || 0,
    };
    const last = samples[samples.length - 1];
    if (last && (cur.t <= last.t || cur.events < last.events || cur.deliveries < last.deliveries || cur.notifications < last.notifications)) {
      samples = []; // the server restarted: its counters did too
    }
    samples.push(cur);
    if (samples.length > HISTORY + 1) samples.shift();
    for (const k of ['events', 'deliveries', 'notifications']) {
      const r = rate(k);
      setText(k + '-rate', r === null ? '–' : rate1.format(r));
      spark(k);
    }
    setText('events-total', num.format(cur.events));
    setText('events-outcomes', ['applied', 'duplicate', 'stale', 'dead_lettered', 'retry']
      .map((o) => `${o.replace('_', '-')} ${num.format(ev[o] || 0)}`).join(' · '));
    setText('deliveries-total', num.format(cur.deliveries));
    setText('deliveries-failed', num.format((c.deliveries || {}).failed || 0));
    setText('notifications-total', num.format(cur.notifications));
    setText('announced-total', num.format(c.announced_shifts || 0));
    fail('status-error', s.status_error ? 'Status unavailable: ' + s.status_error : '');
    if (s.status) renderStatus(s.status, false);
    renderRecent(s.recent, s.recent_error);
    setText('updated', clock.format(new Date(cur.t)));
  }

  // rate is the per-second increase of counter k over the last WINDOW_MS.
  function rate(k) {
    const cur = samples[samples.length - 1];
    let base = null;
    for (let i = samples.length - 2; i >= 0 && cur.t - samples[i].t <= WINDOW_MS + 500; i--) base = samples[i];
    if (!base) return null;
    return (cur[k] - base[k]) / ((cur.t - base.t) / 1000);
  }

  function spark(k) {
    const rates = [];
    for (let i = 1; i < samples.length; i++) {
      rates.push((samples[i][k] - samples[i - 1][k]) / Math.max(0.001, (samples[i].t - samples[i - 1].t) / 1000));
    }
    const max = Math.max(1, ...rates);
    const step = 120 / Math.max(1, rates.length - 1);
    const pts = rates.length < 2 ? [] : rates.map((r, i) => `${(i * step).toFixed(1)},${(29 - (r / max) * 27).toFixed(1)}`);
    $(k + '-spark').firstElementChild.setAttribute('points', pts.join(' '));
  }

  function renderStatus(st, fresh) {
    const e = st.events || {};
    const j = st.jobs || {};
    const n = st.notifications || {};
    setText('lag', e.error ? 'unknown' : num.format(e.lag || 0));
    setText('ack-pending', num.format(e.ack_pending || 0));
    setText('redelivered', num.format(e.redelivered || 0));
    setText('dead-lettered', num.format(e.dead_lettered || 0));
    setText('jobs-pending', j.error ? 'unknown' : num.format(j.pending || 0));
    setText('jobs-failed', j.error ? 'unknown' : num.format(j.failed || 0));
    setText('notif-pending', num.format(n.pending || 0));
    setText('notif-delivered', num.format(n.delivered || 0));
    setText('notif-failed', num.format(n.failed || 0));
    $('dead-lettered').dataset.warn = (e.dead_lettered || 0) > 0;
    $('jobs-failed').dataset.warn = (j.failed || 0) > 0;
    $('notif-failed').dataset.warn = (n.failed || 0) > 0;
    if (fresh || performance.now() >= holdPausedUntil) renderPaused(st.paused || {});
  }

  function renderPaused(p) {
    for (const t of ['events', 'notifications']) {
      const on = !!p[t];
      const s = $(t + '-state');
      s.dataset.paused = on;
      setText(t + '-state', on ? 'paused' : 'running');
      if (!$('pause-' + t).dataset.busy) {
        $('pause-' + t).disabled = on;
        $('resume-' + t).disabled = !on;
      }
    }
  }

  function renderRecent(items, err) {
    const table = $('recent');
    if (!Array.isArray(items) || (!items.length && err)) {
      setText('recent-none', err ? 'Recent notifications unavailable: ' + err : 'Not available on this server.');
      show('recent-none', true);
      table.hidden = true;
      return;
    }
    if (!items.length) {
      setText('recent-none', 'No notifications yet.');
      show('recent-none', true);
      table.hidden = true;
      return;
    }
    const key = JSON.stringify(items);
    if (key === recentKey && !table.hidden) return;
    recentKey = key;
    const rows = items.map((it) => el('tr', null,
      el('td', null, fmtTime(it.created_at)),
      el('td', null, String(it.worker_id ?? '')),
      el('td', { class: 'num' }, String(it.count ?? (Array.isArray(it.shifts) ? it.shifts.length : ''))),
      el('td', null, el('span', { class: 'pill', 'data-status': String(it.status ?? '') }, String(it.status ?? ''))),
      el('td', { class: 'mono' }, String(it.id ?? ''))));
    table.tBodies[0].replaceChildren(...rows);
    show('recent-none', false);
    table.hidden = false;
  }

  // ---- controls ---------------------------------------------------------

  async function control(op, target) {
    const buttons = [$('pause-' + target), $('resume-' + target)];
    for (const b of buttons) { b.disabled = true; b.dataset.busy = '1'; }
    fail('control-error', '');
    try {
      const res = await fetch('/v1/admin/' + op, {
        method: 'POST', headers: { ...auth(), 'Content-Type': 'application/json' }, body: JSON.stringify({ target }),
      });
      if (res.status === 401) { forget('The token was rejected.'); return; }
      if (!res.ok) throw new Error(await errorText(res));
      holdPausedUntil = performance.now() + 2500;
      const st = await fetch('/v1/admin/status', { headers: auth(), cache: 'no-store' });
      if (!st.ok) throw new Error(await errorText(st));
      for (const b of buttons) delete b.dataset.busy;
      renderStatus(await st.json(), true);
    } catch (err) {
      fail('control-error', `Could not ${op} ${target}: ${err.message}`);
      for (const b of buttons) { delete b.dataset.busy; b.disabled = false; }
    }
  }

  // ---- eligibility lookup -----------------------------------------------

  async function lookup(ev) {
    ev.preventDefault();
    const worker = $('lookup-worker').value.trim();
    const shift = $('lookup-shift').value.trim();
    const out = $('lookup-result');
    out.replaceChildren(el('p', { class: 'hint' }, 'Looking up…'));
    const base = '/v1/workers/' + encodeURIComponent(worker) + '/eligible-shifts';
    try {
      const res = await fetch(shift ? base + '/' + encodeURIComponent(shift) : base + '?limit=10', { cache: 'no-store' });
      if (!res.ok) throw new Error(await errorText(res));
      const body = await res.json();
      out.replaceChildren(...(shift ? verdict(worker, shift, body) : shiftsTable(worker, body)));
    } catch (err) {
      out.replaceChildren(el('p', { class: 'error', role: 'alert', id: 'lookup-error' }, err.message));
    }
  }

  function shiftsTable(worker, body) {
    const shifts = body.shifts || [];
    if (!shifts.length) return [el('p', { id: 'lookup-summary' }, `No eligible shifts for worker ${worker}.`)];
    const more = body.next_cursor ? ' (first 10; more exist)' : '';
    return [
      el('p', { id: 'lookup-summary' }, `${shifts.length} eligible shift${shifts.length === 1 ? '' : 's'} for worker ${worker}${more}.`),
      el('table', { id: 'lookup-shifts', class: 'data' },
        el('thead', null, el('tr', null, ...['Shift', 'Facility', 'Profession', 'Start', 'End'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', null, ...shifts.map((s) => el('tr', { 'data-shift': String(s.id) },
          el('td', { class: 'mono' }, String(s.id)), el('td', null, String(s.facility_id)), el('td', null, String(s.profession)),
          el('td', null, fmtTime(s.start)), el('td', null, fmtTime(s.end)))))),
    ];
  }

  function verdict(worker, shift, body) {
    const ok = !!body.eligible;
    const head = el('p', { id: 'lookup-verdict', class: 'verdict', 'data-eligible': ok },
      `Worker ${worker} is ${ok ? '' : 'not '}eligible for shift ${shift}.`);
    const reasons = body.reasons || [];
    if (!reasons.length) return [head];
    return [head, el('ul', { class: 'reasons' }, ...reasons.map((r) => el('li', null,
      el('code', null, r.code), ' ', r.message,
      r.document_ids && r.document_ids.length ? ` (documents ${r.document_ids.join(', ')})` : '')))];
  }

  // ---- start ------------------------------------------------------------

  async function init() {
    $('lookup-form').addEventListener('submit', lookup);
    $('auth-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      token = $('token').value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('token').value = '';
      connect();
    });
    $('signout').addEventListener('click', () => forget(''));
    for (const b of document.querySelectorAll('button[data-op]')) {
      b.addEventListener('click', () => control(b.dataset.op, b.dataset.target));
    }
    let cfg = null;
    for (let wait = 1000; !cfg; wait = Math.min(wait * 2, 30000)) {
      try {
        const res = await fetch('/ui/config.json', { cache: 'no-store' });
        if (res.ok) cfg = await res.json();
      } catch (_) { /* server unreachable: retry */ }
      if (!cfg) { setConn('down', 'server unreachable, retrying'); await new Promise((r) => setTimeout(r, wait)); }
    }
    if (!cfg.admin_enabled) { disabled(); return; }
    if (token) connect(); else askToken('');
  }

  init();
})();
