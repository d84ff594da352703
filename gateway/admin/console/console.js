// The ops console: plain DOM, no framework, no CDN. Every fetch carries the admin token kept in
// sessionStorage (or the header a browser automation adds); every action is a POST with
// X-Ward-Admin: 1. Data from the gateway is only ever set as text, never parsed as HTML.
(() => {
  'use strict';
  const KEY = 'ward-admin-token';
  const REFRESH_MS = 2000;
  const WINDOW_MS = 15 * 60 * 1000;
  const SVG = 'http://www.w3.org/2000/svg';
  let role = 'viewer';
  let busy = false;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }

  const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '–');
  const stamp = (ms) => (ms ? new Date(ms).toLocaleString() : '–');
  const pct = (x) => (x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1) + ' %';
  const show = (v) => (v === undefined || v === null ? '–' : typeof v === 'object' ? Object.entries(v).map(([k, x]) => k + ' ' + x).join(', ') : String(v));

  async function api(path, method, body) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (method === 'POST') {
      headers['X-Ward-Admin'] = '1';
      headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(path, { method: method || 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
    const data = await res.json().catch(() => ({}));
    if (res.status === 401) {
      sessionStorage.removeItem(KEY);
      flash('The token is no longer accepted: reload the page to sign in again.', true);
    }
    return { status: res.status, data };
  }

  function flash(text, bad) {
    const f = document.getElementById('flash');
    f.textContent = text;
    f.className = bad ? 'bad' : 'good';
  }

  function replace(id, ...children) {
    const box = document.getElementById(id);
    box.replaceChildren(...children);
  }

  async function act(path, body, label) {
    if (busy) return;
    busy = true;
    try {
      const r = await api(path, 'POST', body);
      if (r.status === 200) flash(label + ': done (' + show(r.data.before) + ' → ' + show(r.data.after) + ')', false);
      else flash(label + ': refused (' + r.status + ' ' + (r.data.reason || r.data.error || '') + ')', true);
    } catch (err) {
      flash(label + ': ' + err, true);
    } finally {
      busy = false;
      await refresh();
    }
  }

  function actionButton(label, action, onclick, enabled) {
    return el('button', { type: 'button', 'data-action': action, disabled: role !== 'operator' || !enabled, title: role !== 'operator' ? 'operators only' : undefined, onclick }, label);
  }

  function renderOverview(o) {
    document.getElementById('who').textContent = o.whoami ? o.whoami.name + ' (' + o.whoami.role + ')' : '';
    role = o.whoami ? o.whoami.role : 'viewer';
    document.getElementById('policy-version').textContent = o.policy_version ? String(o.policy_version).slice(0, 16) : '–';
    const lr = o.last_reload;
    document.getElementById('last-reload').textContent = lr ? stamp(lr.at) + ' · ' + lr.result + (lr.error ? ' · ' + lr.error : '') : '–';
    const ready = o.readiness;
    replace(
      'readiness',
      ready ? el('span', { class: 'badge ' + (ready.status === 'ok' ? 'healthy' : 'ejected'), 'data-readiness': ready.status, text: ready.status }) : '–',
      ...(ready ? ready.reasons : []).map((r) => el('span', { class: 'chip', text: r })),
    );
    const tops = o.top_refusals || [];
    replace(
      'refusal-list',
      tops.length === 0
        ? el('p', { class: 'muted', text: 'No refusals recorded.' })
        : el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Tenant' }), el('th', { text: 'Refusals' }), el('th', { text: 'By reason' }))),
            el('tbody', {}, tops.map((t) => el('tr', {}, el('td', { text: t.tenant }), el('td', { class: 'num', text: t.count }), el('td', { text: show(t.reasons) }))))),
    );
  }

  function targetDetail(t) {
    if (t.state === 'ejected' && t.ejected_until) return 'until ' + time(t.ejected_until) + (t.reason ? ' (' + t.reason + ')' : '');
    if (t.state === 'draining') return 'since ' + time(t.since) + ' · ' + t.in_flight + ' in flight remain';
    if (t.state === 'maint') return 'since ' + time(t.since);
    if (t.state === 'slow_start') return 'ramping, weight ' + t.weight;
    if (t.consecutive_failures > 0) return t.consecutive_failures + ' failures in a row';
    return '';
  }

  function renderUpstreams(list) {
    replace('upstream-list', ...list.map((u) => {
      const rows = u.targets.map((t) =>
        el('tr', { 'data-target': t.url },
          el('td', { class: 'url', text: t.url }),
          el('td', {}, el('span', { class: 'badge state ' + t.state, 'data-state': t.state, text: t.state })),
          el('td', { class: 'num', text: t.in_flight }),
          el('td', { class: 'num', text: t.ejections }),
          el('td', { class: 'num', text: t.downs }),
          el('td', { class: 'detail', text: targetDetail(t) }),
          el('td', { class: 'actions' },
            actionButton('Drain', 'drain', () => act('/admin/api/upstreams/' + encodeURIComponent(u.name) + '/targets/drain', { target: t.url }, 'drain ' + t.url), t.state !== 'draining'),
            actionButton('Undrain', 'undrain', () => act('/admin/api/upstreams/' + encodeURIComponent(u.name) + '/targets/undrain', { target: t.url }, 'undrain ' + t.url), t.state === 'draining' || t.state === 'maint'),
            actionButton('Maintenance', 'maint', () => act('/admin/api/upstreams/' + encodeURIComponent(u.name) + '/targets/maint', { target: t.url }, 'maintenance ' + t.url), t.state !== 'maint'))));
      return el('article', { class: 'card', 'data-upstream': u.name },
        el('h3', {}, u.name, ' ', el('span', { class: 'muted', text: u.balance }),
          u.panic ? el('span', { class: 'badge down', 'data-panic': 'true', text: 'panic: health ignored' }) : null,
          u.frozen ? el('span', { class: 'badge ejected', text: 'frozen: detector suspects ward’s network' }) : null,
          u.health ? null : el('span', { class: 'chip', text: 'no health checks' })),
        el('table', {},
          el('thead', {}, el('tr', {}, ['Target', 'State', 'In flight', 'Ejections', 'Downs', 'Detail', 'Actions'].map((h) => el('th', { text: h })))),
          el('tbody', {}, rows)));
    }));
    renderTimeline(list);
  }

  const EVENT_CLASS = { ejected: 'ejected', down: 'down', drain: 'draining', maint: 'maint', voided: 'voided', frozen: 'ejected' };

  function renderTimeline(list) {
    const now = Date.now();
    const from = now - WINDOW_MS;
    const rowH = 18;
    const labelW = 230;
    const width = 900;
    const x = (t) => labelW + ((Math.max(from, Math.min(now, t)) - from) / WINDOW_MS) * (width - labelW - 10);
    const blocks = [];
    for (const u of list) {
      const recent = u.events.filter((e) => (e.until || e.at) >= from && EVENT_CLASS[e.kind]);
      const rows = u.targets.map((t) => t.url);
      const s = svg('svg', { viewBox: '0 0 ' + width + ' ' + (rows.length * rowH + 24), class: 'timeline', role: 'img', 'aria-label': 'events of ' + u.name });
      rows.forEach((url, i) => {
        const label = svg('text', { x: 0, y: i * rowH + 13, class: 'tl-label' });
        label.textContent = url;
        s.append(label, svg('line', { x1: labelW, x2: width - 10, y1: i * rowH + 9, y2: i * rowH + 9, class: 'tl-axis' }));
      });
      for (const e of recent) {
        const row = e.target === undefined ? -1 : rows.indexOf(e.target);
        const y = row < 0 ? 0 : row * rowH + 2;
        const h = row < 0 ? rows.length * rowH : rowH - 4;
        const end = e.until || e.at + 4000;
        const r = svg('rect', { x: x(e.at), y, width: Math.max(3, x(end) - x(e.at)), height: h, class: 'tl ' + EVENT_CLASS[e.kind] });
        const tip = svg('title', {});
        tip.textContent = e.kind + ' ' + (e.target || u.name) + ' at ' + time(e.at) + (e.until ? ' until ' + time(e.until) : '') + (e.reason ? ' (' + e.reason + ')' : '');
        r.append(tip);
        s.append(r);
      }
      const axis = svg('text', { x: labelW, y: rows.length * rowH + 18, class: 'tl-label' });
      axis.textContent = time(from) + ' … ' + time(now);
      s.append(axis);
      const log = u.events.slice(-8).reverse().map((e) => el('li', { 'data-event': e.kind, text: time(e.at) + ' · ' + e.kind + (e.target ? ' · ' + e.target : '') + (e.until ? ' · until ' + time(e.until) : '') + (e.reason ? ' · ' + e.reason : '') }));
      blocks.push(el('div', { class: 'card' }, el('h3', { text: u.name }), s, log.length ? el('ul', { class: 'events' }, log) : el('p', { class: 'muted', text: 'No events yet.' })));
    }
    replace('timeline', ...blocks);
  }

  function bar(label, side) {
    return el('div', { class: 'side' },
      el('span', { class: 'side-label', text: label }),
      el('span', { class: 'meter' }, el('span', { class: 'fill', style: 'width:' + Math.min(100, side.error_rate * 100 * 5) + '%' })),
      el('span', { class: 'num', text: pct(side.error_rate) + ' errors of ' + side.requests }));
  }

  function renderReleases(list) {
    if (list.length === 0) return replace('release-list', el('p', { class: 'muted', text: 'No releases in the policy.' }));
    replace('release-list', ...list.map((r) => {
      const path = (a) => '/admin/api/releases/' + encodeURIComponent(r.name) + '/' + a;
      const live = r.status === 'running' || r.status === 'paused';
      return el('article', { class: 'card', 'data-release': r.name },
        el('h3', {}, r.name, ' ', el('span', { class: 'badge release ' + r.status, 'data-status': r.status, text: r.status }), r.reason ? el('span', { class: 'muted', text: ' ' + r.reason }) : null),
        el('p', {}, 'step ' + (r.step + 1) + ' of ' + r.steps.length + ' · ' + r.percent + ' % by hash' + (r.groups.length ? ' + groups ' + r.groups.join(', ') : '') +
          ' · ' + r.stable + ' → ' + r.canary + ' · canary share of requests ' + pct(r.share) + (r.next_step_at ? ' · next step ' + time(r.next_step_at) : '')),
        bar('canary ' + r.canary, r.canary_side),
        bar('stable ' + r.stable, r.stable_side),
        r.analysis ? el('p', { class: 'muted', text: 'analysis: window ' + r.analysis.window_s + ' s, at least ' + r.analysis.min_requests + ' requests, max error rate ' + pct(r.analysis.max_error_rate) }) : null,
        el('p', { class: 'muted', text: 'decisions: ' + (Object.keys(r.decisions).length ? show(r.decisions) : 'none') }),
        el('div', { class: 'actions' },
          actionButton('Pause', 'pause', () => act(path('pause'), {}, 'pause ' + r.name), r.status === 'running'),
          actionButton('Resume', 'resume', () => act(path('resume'), {}, 'resume ' + r.name), r.status !== 'running' && r.status !== 'promoted'),
          actionButton('Promote', 'promote', () => act(path('promote'), {}, 'promote ' + r.name), live),
          actionButton('Abort', 'abort', () => act(path('abort'), {}, 'abort ' + r.name), live)));
    }));
  }

  function renderAudit(entries) {
    if (entries.length === 0) return replace('audit-list', el('p', { class: 'muted', text: 'No actions yet.' }));
    replace('audit-list', el('table', {},
      el('thead', {}, el('tr', {}, ['When', 'Who', 'Action', 'Subject', 'Before → after', 'Result'].map((h) => el('th', { text: h })))),
      el('tbody', {}, entries.map((e) => el('tr', { 'data-audit': e.action },
        el('td', { text: stamp(e.at) }), el('td', { text: e.who + ' (' + e.role + ')' }), el('td', { text: e.action }),
        el('td', { class: 'url', text: e.subject }), el('td', { text: show(e.before) + ' → ' + show(e.after) }),
        el('td', { text: e.result + (e.error ? ' (' + e.error + ')' : '') }))))));
  }

  async function refresh() {
    try {
      const [o, u, r, a] = await Promise.all([api('/admin/api/overview'), api('/admin/api/upstreams'), api('/admin/api/releases'), api('/admin/api/audit?limit=50')]);
      if (o.status === 200) renderOverview(o.data);
      if (u.status === 200) renderUpstreams(u.data.upstreams);
      if (r.status === 200) renderReleases(r.data.releases);
      if (a.status === 200) renderAudit(a.data.entries);
      document.getElementById('updated').textContent = 'updated ' + time(Date.now());
    } catch (err) {
      document.getElementById('updated').textContent = 'update failed: ' + err;
    }
  }

  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  refresh();
  setInterval(() => { if (!busy) refresh(); }, REFRESH_MS);
})();
