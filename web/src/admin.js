// The admin console (`/admin`): one page, no framework, over the management API
// (/api/v1). It signs in with POST /api/v1/login, which sets the HttpOnly session
// cookie: the page never sees the session, and every call rides on that cookie.
//
// Rules this file keeps:
// - Everything that comes from the API is inserted as text, never as HTML; links from
//   the API (artwork) are only followed when they are http(s).
// - One-time secrets (stream keys, webhook signing secrets) exist only in the secret
//   dialog while it is open: never in localStorage or sessionStorage, never in a
//   variable that outlives the dialog, never in console output. Closing the dialog
//   clears them.
// - A section whose endpoint this server lacks (404 "no such API route") says so in
//   that section; the rest of the console keeps working.
'use strict';

(() => {
  const LIVE_POLL_MS = 2000;
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
  // How the channel table names a latency mode.
  const LATENCY_LABELS = { low: 'low (LL-HLS)', standard: 'standard (HLS)', realtime: 'real time (WebRTC)' };
  // The RTMP server URL that the key dialog shows. Not a secret: remembered per browser.
  const INGEST_STORAGE = 'starling.admin.ingest';
  const VIEWS = {
    dashboard: { title: 'Dashboard', enter: enterDashboard, leave: leaveDashboard },
    channels: { title: 'Channels', enter: enterChannels },
    devices: { title: 'Devices', enter: enterDevices },
    events: { title: 'Events', enter: enterEvents, leave: leaveEvents },
    users: { title: 'Users', enter: enterUsers },
    webhooks: { title: 'Webhooks', enter: enterWebhooks },
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, { field = null, retryAfter = null, method = '', path = '' } = {}) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.code = code;
      this.field = field;
      this.retryAfter = retryAfter;
      this.method = method;
      this.path = path;
    }
  }

  /** A check made here before calling the API, naming the form field at fault. */
  class FormError extends Error {
    constructor(field, message) {
      super(message);
      this.field = field;
    }
  }

  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, 'network', `could not reach the server (${err.message})`, { method, path });
    }
    const text = res.status === 204 ? '' : await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (res.ok) return data;
    const e = data && typeof data.error === 'object' && data.error ? data.error : {};
    const retry = Number(res.headers.get('Retry-After'));
    const err = new ApiError(
      res.status,
      typeof e.code === 'string' ? e.code : `http_${res.status}`,
      typeof e.message === 'string' ? e.message : `the server answered ${res.status} ${res.statusText}`.trim(),
      { field: typeof e.field === 'string' ? e.field : null, retryAfter: retry > 0 ? retry : null, method, path },
    );
    if (res.status === 401 && path !== '/api/v1/login') sessionEnded();
    throw err;
  }

  /** One sentence for a person, from any error. */
  function explain(err) {
    if (!(err instanceof ApiError)) return String((err && err.message) || err);
    if (err.status === 404 && (err.message === 'no such API route' || err.code === 'http_404')) {
      return `This server does not offer ${err.method} ${err.path.split('?')[0]} yet (404 no such API route): update Starling to use this section.`;
    }
    let msg = err.message.charAt(0).toUpperCase() + err.message.slice(1);
    if (!/[.!?…]$/.test(msg)) msg += '.';
    if (err.field) msg += ` (Field: ${err.field}.)`;
    if (err.retryAfter) msg += ` Try again in ${err.retryAfter} s.`;
    if (err.status) msg += ` [${err.status} ${err.code}]`;
    return msg;
  }

  // ---------------------------------------------------------------- DOM helpers

  /** An element; `props` sets attributes, plus `text`, `class` and `on` (listeners). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k === 'class') node.className = v;
      else if (k === 'on') for (const [type, fn] of Object.entries(v)) node.addEventListener(type, fn);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function button(text, onClick, { kind = 'secondary', label, disabled } = {}) {
    return el('button', { type: 'button', class: `small ${kind}`, 'aria-label': label, disabled, text, on: { click: onClick } });
  }

  function pill(text, kind) {
    return el('span', { class: `pill ${kind || text}`, text });
  }

  function say(node, text, kind) {
    if (node.textContent !== text) node.textContent = text;
    node.classList.toggle('error', kind === 'error');
    node.classList.toggle('ok', kind === 'ok');
  }

  /** Replaces a table's rows; with none, one row saying `empty`. */
  function fillTable(table, rows, empty) {
    const body = table.tBodies[0];
    if (rows.length) {
      body.replaceChildren(...rows);
    } else {
      const cols = table.tHead.rows[0].cells.length;
      body.replaceChildren(el('tr', null, el('td', { class: 'empty', colspan: cols, text: empty })));
    }
  }

  function clearTable(table) {
    table.tBodies[0].replaceChildren();
  }

  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

  function fmtTime(ms) {
    return Number.isFinite(ms) ? dateTime.format(new Date(ms)) : '–';
  }

  function fmtDuration(totalSecs) {
    const s = Math.max(0, Math.floor(totalSecs));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
  }

  function safeHttpUrl(s) {
    try {
      const u = new URL(s);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
    } catch {
      return null;
    }
  }

  /**
   * Wires a form: `handler(elements)` returns the success message; a thrown error is
   * explained in the form's message line and the field it names is marked and focused.
   */
  function onSubmit(form, handler) {
    const msg = form.querySelector('.form-message');
    const submit = form.querySelector('button[type="submit"]');
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      for (const f of form.querySelectorAll('[aria-invalid]')) f.removeAttribute('aria-invalid');
      submit.disabled = true;
      say(msg, 'Working…');
      try {
        say(msg, (await handler(form.elements)) || '', 'ok');
      } catch (err) {
        say(msg, explain(err), 'error');
        const field = err && err.field ? form.elements.namedItem(err.field) : null;
        if (field && typeof field.focus === 'function') {
          field.setAttribute('aria-invalid', 'true');
          field.focus();
        }
      } finally {
        submit.disabled = false;
      }
    });
  }

  /** The confirmation dialog; resolves true only on the confirm button. */
  function confirmAction(text, yesLabel) {
    const dialog = $('confirm-dialog');
    return new Promise((resolve) => {
      $('confirm-text').textContent = text;
      $('confirm-yes').textContent = yesLabel;
      $('confirm-yes').onclick = () => {
        resolve(true);
        dialog.close();
      };
      $('confirm-no').onclick = () => dialog.close();
      dialog.onclose = () => resolve(false);
      dialog.showModal();
      $('confirm-no').focus(); // the safe choice has the focus
    });
  }

  // A page of a listing: `limit`/`offset` and Previous / Next / per-page controls.
  function makePager(navId, reload) {
    const state = { limit: 25, offset: 0 };
    const nav = $(navId);
    const prev = button('Previous', () => {
      state.offset = Math.max(0, state.offset - state.limit);
      reload();
    });
    const next = button('Next', () => {
      state.offset += state.limit;
      reload();
    });
    const where = el('span', { 'aria-live': 'polite' });
    const sizeId = `${navId}-size`;
    const size = el('select', { id: sizeId });
    for (const n of [10, 25, 50, 100]) size.append(el('option', { value: n, text: n, selected: n === state.limit }));
    size.addEventListener('change', () => {
      state.limit = Number(size.value);
      state.offset = 0;
      reload();
    });
    nav.replaceChildren(prev, where, next, el('label', { for: sizeId, text: 'Per page' }), size);
    // `count` rows shown from `offset`; null: nothing could be loaded.
    state.update = (count) => {
      prev.disabled = state.offset === 0 || count === null;
      next.disabled = count === null || count < state.limit;
      where.textContent = count ? `${state.offset + 1}–${state.offset + count}` : state.offset && count !== null ? 'No more items' : '';
    };
    state.update(null);
    return state;
  }

  /** Loads one page; steps back when a page emptied (say, after deleting its last row). */
  async function loadPage(path, pager) {
    let body = await api('GET', `${path}?limit=${pager.limit}&offset=${pager.offset}`);
    let items = Array.isArray(body && body.items) ? body.items : [];
    if (!items.length && pager.offset > 0) {
      pager.offset = Math.max(0, pager.offset - pager.limit);
      body = await api('GET', `${path}?limit=${pager.limit}&offset=${pager.offset}`);
      items = Array.isArray(body && body.items) ? body.items : [];
    }
    pager.update(items.length);
    return items;
  }

  // ---------------------------------------------------------------- session and views

  let me = null;
  let current = null;

  async function boot() {
    try {
      const p = await api('GET', '/api/v1/me');
      signedIn(p, null);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // sessionEnded() showed the form
      say($('boot-status'), `Could not reach the management API: ${explain(err)} Reload the page to try again.`, 'error');
    }
  }

  function showLogin(message, kind) {
    $('boot-status').hidden = true;
    $('login-view').hidden = false;
    say($('login-error'), message || '', kind);
    $('login-email').focus();
  }

  function signedIn(p, email) {
    me = p;
    $('boot-status').hidden = true;
    $('login-view').hidden = true;
    $('tabs').hidden = false;
    $('whoami').hidden = false;
    showWho(email);
    if (!email && p.user_id) {
      // The email is nice to show; servers without GET /users/{id} just show the id.
      api('GET', `/api/v1/users/${encodeURIComponent(p.user_id)}`)
        .then((u) => {
          if (me === p && u && typeof u.email === 'string') showWho(u.email);
        })
        .catch(() => {});
    }
    route(true);
  }

  function showWho(email) {
    if (!me) return;
    const parts = [email ? `Signed in as ${email}` : 'Signed in', me.role];
    if (me.system) parts.push('system organisation');
    $('whoami-text').textContent = parts.join(' · ');
    $('whoami-text').title = `user ${me.user_id}, organisation ${me.org_id}`;
  }

  /** Forget everything on screen from the signed-in user, and show the sign-in form. */
  function signOut(message, kind) {
    leave();
    me = null;
    current = null;
    channelCache = null;
    selectedDevice = null;
    for (const d of document.querySelectorAll('dialog')) if (d.open) d.close();
    for (const t of document.querySelectorAll('table')) clearTable(t);
    live.rows.clear();
    eventRows.clear();
    for (const name of Object.keys(VIEWS)) $(`view-${name}`).hidden = true;
    $('keys-panel').hidden = true;
    $('tabs').hidden = true;
    $('whoami').hidden = true;
    showLogin(message, kind);
  }

  function sessionEnded() {
    if (me) signOut('Your session ended: sign in again.', 'error');
    else showLogin();
  }

  // The login form has its own handler: its message line is an alert, and a failure
  // must leave the password selected for another try.
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    const error = $('login-error');
    if (!email || !password) {
      say(error, 'Enter your email and password.', 'error');
      (email ? $('login-password') : $('login-email')).focus();
      return;
    }
    const submit = e.target.querySelector('button[type="submit"]');
    submit.disabled = true;
    say(error, '');
    try {
      const p = await api('POST', '/api/v1/login', { email, password });
      $('login-password').value = '';
      signedIn(p, email);
    } catch (err) {
      const wrong = err instanceof ApiError && err.status === 401 ? 'wrong email or password. ' : '';
      say(error, `Sign-in failed: ${wrong}${explain(err)}`, 'error');
      $('login-password').focus();
      $('login-password').select();
    } finally {
      submit.disabled = false;
    }
  });

  $('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/api/v1/logout');
      signOut('You are signed out.');
    } catch (err) {
      // The cookie may still be valid: say so rather than pretending.
      signOut(`Signing out failed: ${explain(err)}`, 'error');
    }
  });

  function leave() {
    const view = current && VIEWS[current];
    if (view && view.leave) view.leave();
  }

  function route(focus) {
    if (!me) return;
    const wanted = location.hash.slice(1);
    const name = Object.hasOwn(VIEWS, wanted) ? wanted : 'dashboard';
    if (name !== current) leave();
    current = name;
    for (const v of Object.keys(VIEWS)) $(`view-${v}`).hidden = v !== name;
    for (const a of $('tabs').querySelectorAll('a')) {
      if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${VIEWS[name].title} · Admin · Starling`;
    VIEWS[name].enter();
    if (focus) $(`${name}-title`).focus();
  }

  window.addEventListener('hashchange', () => route(true));

  // ---------------------------------------------------------------- dashboard

  const live = { timer: null, busy: false, rows: new Map() };

  function enterDashboard() {
    pollLive();
  }

  function leaveDashboard() {
    clearTimeout(live.timer);
    live.timer = null;
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) leaveDashboard();
    else if (current === 'dashboard') pollLive();
  });

  async function pollLive() {
    clearTimeout(live.timer);
    live.timer = null;
    if (live.busy) return; // the call in flight schedules the next one
    live.busy = true;
    try {
      const body = await api('GET', '/api/v1/live');
      if (current === 'dashboard') renderLive(Array.isArray(body && body.channels) ? body.channels : []);
    } catch (err) {
      say($('live-status'), `Could not load the live streams: ${explain(err)} Retrying every 2 s.`, 'error');
    } finally {
      live.busy = false;
    }
    if (current === 'dashboard' && me && !document.hidden) live.timer = setTimeout(pollLive, LIVE_POLL_MS);
  }

  function codecName(codec) {
    if (typeof codec !== 'string') return '';
    if (/^(avc1|avc3)/.test(codec)) return `H.264 (${codec})`;
    if (/^(hvc1|hev1)/.test(codec)) return `HEVC (${codec})`;
    if (/^mp4a/.test(codec)) return `AAC (${codec})`;
    if (/^opus/i.test(codec)) return 'Opus';
    return codec;
  }

  function videoText(v) {
    if (!v) return 'none';
    const parts = [codecName(v.codec)];
    if (v.width && v.height) parts.push(`${v.width}×${v.height}`);
    if (Number.isFinite(v.frame_rate) && v.frame_rate > 0) parts.push(`${Math.round(v.frame_rate * 100) / 100} fps`);
    return parts.filter(Boolean).join(' · ');
  }

  function audioText(a) {
    if (!a) return 'none';
    const parts = [codecName(a.codec)];
    if (a.sample_rate) parts.push(`${a.sample_rate / 1000} kHz`);
    if (a.channels) parts.push(a.channels === 1 ? 'mono' : a.channels === 2 ? 'stereo' : `${a.channels} ch`);
    return parts.filter(Boolean).join(' · ');
  }

  // The P2P grid of a channel (docs/p2p.md): peers in its swarms now, the share of bytes
  // its players got from peers, and how much of their time they spent stalled.
  function p2pText(p) {
    if (!p) return '–';
    const pct = (x) => `${Math.round(x * 1000) / 10}%`;
    const parts = [`${p.peers} peer${p.peers === 1 ? '' : 's'}`];
    if (p.reports > 0) parts.push(`${pct(p.offload_ratio)} from peers`, `${pct(p.rebuffer_ratio)} stalled`);
    return parts.join(' · ');
  }

  // Pushed by an external packager (HTTP PUT): served as it came, tracks unknown here.
  const isPushed = (ch) => Boolean(ch.ingest && ch.ingest.protocol === 'put');

  function health(ch) {
    if (isPushed(ch)) return pill('pushed (HTTP PUT)', 'ok');
    // WebRTC (WHIP) publishers send Opus or no audio at all (a screen without sound).
    if (ch.ingest && ch.ingest.protocol === 'webrtc' && ch.video && !ch.audio) return pill('WebRTC, no audio', 'ok');
    const issues = [];
    if (!ch.video) issues.push('no video');
    else if (!(ch.video.width && ch.video.height)) issues.push('video size unknown');
    if (!ch.audio) issues.push('no audio');
    return issues.length ? pill(issues.join(', '), 'warn') : pill('healthy', 'ok');
  }

  function liveRow(name) {
    const cells = Array.from({ length: 7 }, () => el('td'));
    const link = el('a', { href: `/watch/${encodeURIComponent(name)}`, text: name });
    // The channel's small picture (decorative: the name follows); hidden until one loads
    // (none yet, thumbnails off, or a private channel, whose pictures need a token).
    const thumb = el('img', { class: 'live-thumb', alt: '', width: 96, height: 54 });
    thumb.hidden = true;
    thumb.addEventListener('load', () => { thumb.hidden = false; });
    thumb.addEventListener('error', () => { thumb.hidden = true; });
    const tr = el('tr', { 'data-channel': name }, el('th', { scope: 'row' }, thumb, link), ...cells);
    return { tr, cells, thumb };
  }

  function setCell(td, content) {
    if (typeof content === 'string') {
      if (td.textContent !== content || td.children.length) td.textContent = content;
    } else if (td.textContent !== content.textContent || td.firstElementChild?.className !== content.className) {
      td.replaceChildren(content);
    }
  }

  function renderLive(channels) {
    const list = channels.filter((ch) => ch && typeof ch.name === 'string' && NAME_RE.test(ch.name));
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const names = new Set(list.map((ch) => ch.name));
    for (const [name, r] of live.rows) {
      if (!names.has(name)) {
        r.tr.remove();
        live.rows.delete(name);
      }
    }
    const body = $('live-table').tBodies[0];
    for (const row of body.querySelectorAll('tr:not([data-channel])')) row.remove();
    // Rows are kept across polls and updated in place, so focus and selection survive.
    let prev = null;
    for (const ch of list) {
      let r = live.rows.get(ch.name);
      if (!r) {
        r = liveRow(ch.name);
        live.rows.set(ch.name, r);
      }
      const since = Date.parse(ch.since);
      const thumb = `/live/${encodeURIComponent(ch.name)}/thumb-small.jpg?v=${Math.floor(Date.now() / 10000)}`;
      if (r.thumb.getAttribute('src') !== thumb) r.thumb.src = thumb;
      const [sinceCell, uptime, video, audio, viewers, p2pCell, healthCell] = r.cells;
      setCell(sinceCell, Number.isFinite(since) ? clock.format(new Date(since)) : '–');
      setCell(uptime, Number.isFinite(since) ? fmtDuration((Date.now() - since) / 1000) : '–');
      setCell(video, isPushed(ch) ? '–' : videoText(ch.video));
      setCell(audio, isPushed(ch) ? '–' : audioText(ch.audio));
      setCell(viewers, Number.isFinite(ch.viewers) ? String(ch.viewers) : '–');
      setCell(p2pCell, p2pText(ch.p2p));
      setCell(healthCell, health(ch));
      const at = prev ? prev.nextSibling : body.firstChild;
      if (at !== r.tr) body.insertBefore(r.tr, at);
      prev = r.tr;
    }
    if (!list.length) {
      body.append(el('tr', null, el('td', { class: 'empty', colspan: 8, text: 'Nothing is live right now.' })));
    }
    say($('live-status'), list.length
      ? `${list.length} stream${list.length === 1 ? '' : 's'} live. Refreshed every 2 seconds.`
      : 'Nothing is live. Refreshed every 2 seconds.');
  }

  // ---------------------------------------------------------------- channels

  let channelCache = null;

  /** Every channel of the organisation (for pickers and names), cached until a change. */
  async function allChannels() {
    if (channelCache) return channelCache;
    const out = [];
    for (let offset = 0; offset < 10_000; offset += 500) {
      const body = await api('GET', `/api/v1/channels?limit=500&offset=${offset}`);
      const items = Array.isArray(body && body.items) ? body.items : [];
      out.push(...items);
      if (items.length < 500) break;
    }
    channelCache = out;
    return out;
  }

  function channelLabel(id) {
    const ch = channelCache && channelCache.find((c) => c.id === id);
    return ch ? ch.name : id || '–';
  }

  /** Refills every channel picker, keeping what each had selected. */
  async function refreshChannelPickers() {
    let list;
    try {
      list = await allChannels();
    } catch {
      list = [];
    }
    for (const sel of document.querySelectorAll('select[data-channel-select]')) {
      const keep = sel.value;
      const first = {
        none: 'No default channel',
        device: selectedDevice && selectedDevice.channel_id
          ? `The device's channel (${channelLabel(selectedDevice.channel_id)})`
          : 'The device has no channel: choose one',
        required: list.length ? 'Choose a channel…' : 'Create a channel first',
      }[sel.dataset.channelSelect];
      const options = [el('option', { value: '', text: first })];
      for (const ch of list) {
        const text = ch.title && ch.title !== ch.name ? `${ch.name} (${ch.title})` : ch.name;
        options.push(el('option', { value: ch.id, text }));
      }
      sel.replaceChildren(...options);
      if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    }
    return list;
  }

  const channelPager = makePager('channels-pager', loadChannels);

  function enterChannels() {
    loadChannels();
  }

  async function loadChannels() {
    const status = $('channels-status');
    say(status, 'Loading the channels…');
    try {
      const items = await loadPage('/api/v1/channels', channelPager);
      fillTable($('channels-table'), items.map(channelRow), channelPager.offset ? 'No more channels.' : 'No channels yet: create one above.');
      say(status, '');
    } catch (err) {
      clearTable($('channels-table'));
      channelPager.update(null);
      say(status, `Could not load the channels: ${explain(err)}`, 'error');
    }
  }

  function channelRow(ch) {
    const watch = el('a', { href: `/watch/${encodeURIComponent(ch.name)}`, text: ch.name });
    return el('tr', { 'data-id': ch.id, 'data-name': ch.name },
      el('th', { scope: 'row' }, watch),
      el('td', { text: ch.title }),
      el('td', null, pill(ch.visibility, ch.visibility === 'public' ? 'ok' : 'idle')),
      el('td', { text: LATENCY_LABELS[ch.latency_mode] || ch.latency_mode }),
      el('td', { text: ch.recording ? 'yes' : 'no' }),
      el('td', { text: ch.dvr_window_secs ? fmtDuration(ch.dvr_window_secs) : 'live edge only' }),
      el('td', { text: fmtTime(ch.created_at) }),
      el('td', { class: 'actions' },
        button('Edit', () => editChannel(ch), { label: `Edit channel ${ch.name}` }),
        button('Delete', () => deleteChannel(ch), { kind: 'danger', label: `Delete channel ${ch.name}` })));
  }

  onSubmit($('channel-create'), async (f) => {
    const name = f.name.value.trim();
    if (!NAME_RE.test(name)) throw new FormError('name', 'The name must be 1 to 64 letters, digits, _ or -.');
    const dvr = f.dvr_window_secs.value === '' ? 0 : Number(f.dvr_window_secs.value);
    if (!Number.isInteger(dvr) || dvr < 0) throw new FormError('dvr_window_secs', 'The DVR window is a whole number of seconds, 0 or more.');
    const sensitivity = sensitivityOf(f.highlight_sensitivity);
    const body = {
      name,
      visibility: f.visibility.value,
      latency_mode: f.latency_mode.value,
      recording: f.recording.checked,
      dvr_window_secs: dvr,
      reframe: f.reframe.checked,
      highlights: f.highlights.checked,
      reframe_subject: f.reframe_subject.value,
      highlight_sensitivity: sensitivity,
    };
    if (f.title.value.trim()) body.title = f.title.value.trim();
    const ch = await api('POST', '/api/v1/channels', body);
    channelCache = null;
    $('channel-create').reset();
    await loadChannels();
    return `Created channel ${ch.name}.`;
  });

  // The highlight sensitivity a form field holds: 0.1 to 10 (1 when left empty).
  function sensitivityOf(input) {
    const v = input.value === '' ? 1 : Number(input.value);
    if (!Number.isFinite(v) || v < 0.1 || v > 10) throw new FormError(input.name, 'The highlight sensitivity is a number from 0.1 to 10.');
    return v;
  }

  let editing = null;

  function editChannel(ch) {
    editing = ch;
    const form = $('channel-edit-form');
    form.elements.title.value = ch.title;
    form.elements.visibility.value = ch.visibility;
    form.elements.reframe.checked = !!ch.reframe;
    form.elements.highlights.checked = !!ch.highlights;
    form.elements.reframe_subject.value = ch.reframe_subject || 'largest';
    form.elements.highlight_sensitivity.value = ch.highlight_sensitivity ?? 1;
    say(form.querySelector('.form-message'), '');
    $('channel-edit-title').textContent = `Edit channel ${ch.name}`;
    $('channel-edit').showModal();
    form.elements.title.focus();
  }

  $('channel-edit-cancel').addEventListener('click', () => $('channel-edit').close());
  $('channel-edit-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = e.target;
    const msg = form.querySelector('.form-message');
    if (!editing) return;
    try {
      await api('PATCH', `/api/v1/channels/${encodeURIComponent(editing.id)}`, {
        title: form.elements.title.value.trim(),
        visibility: form.elements.visibility.value,
        reframe: form.elements.reframe.checked,
        highlights: form.elements.highlights.checked,
        reframe_subject: form.elements.reframe_subject.value,
        highlight_sensitivity: sensitivityOf(form.elements.highlight_sensitivity),
      });
      channelCache = null;
      $('channel-edit').close();
      say($('channels-status'), `Saved channel ${editing.name}.`, 'ok');
      loadChannels();
    } catch (err) {
      say(msg, explain(err), 'error');
    }
  });

  async function deleteChannel(ch) {
    if (!await confirmAction(`Delete channel ${ch.name}? Its URL stops working and this cannot be undone.`, 'Delete channel')) return;
    try {
      await api('DELETE', `/api/v1/channels/${encodeURIComponent(ch.id)}`);
      channelCache = null;
      say($('channels-status'), `Deleted channel ${ch.name}.`, 'ok');
      loadChannels();
    } catch (err) {
      say($('channels-status'), `Could not delete ${ch.name}: ${explain(err)}`, 'error');
    }
  }

  // ---------------------------------------------------------------- devices and keys

  let selectedDevice = null;

  async function enterDevices() {
    await refreshChannelPickers();
    await loadDevices();
  }

  async function loadDevices() {
    const status = $('devices-status');
    say(status, 'Loading the devices…');
    try {
      const body = await api('GET', '/api/v1/devices');
      const items = Array.isArray(body && body.items) ? body.items : [];
      fillTable($('devices-table'), items.map(deviceRow), 'No devices yet: register one above.');
      say(status, '');
      if (selectedDevice) {
        const still = items.find((d) => d.id === selectedDevice.id);
        if (still) selectDevice(still, false);
        else closeKeys();
      }
    } catch (err) {
      clearTable($('devices-table'));
      say(status, `Could not load the devices: ${explain(err)}`, 'error');
    }
  }

  function deviceRow(d) {
    const revoked = d.revoked_at != null;
    const selected = selectedDevice && selectedDevice.id === d.id;
    const keys = button('Keys', () => selectDevice(d, true), { label: `Stream keys of ${d.name}` });
    keys.setAttribute('aria-controls', 'keys-panel');
    keys.setAttribute('aria-expanded', selected ? 'true' : 'false');
    return el('tr', { 'data-id': d.id, 'data-name': d.name, class: selected ? 'selected' : null },
      el('th', { scope: 'row', text: d.name }),
      el('td', { text: d.kind }),
      el('td', { text: d.channel_id ? channelLabel(d.channel_id) : '–' }),
      el('td', null, revoked ? pill('revoked') : pill(d.state)),
      el('td', { text: fmtTime(d.last_seen_at) }),
      el('td', { text: fmtTime(d.created_at) }),
      el('td', { class: 'actions' }, keys,
        button('Revoke', () => revokeDevice(d), { kind: 'danger', label: `Revoke device ${d.name}`, disabled: revoked })));
  }

  onSubmit($('device-create'), async (f) => {
    const name = f.name.value.trim();
    if (!name) throw new FormError('name', 'Give the device a name.');
    const body = { name, kind: f.kind.value };
    if (f.channel_id.value) body.channel_id = f.channel_id.value;
    const d = await api('POST', '/api/v1/devices', body);
    $('device-create').reset();
    await loadDevices();
    selectDevice(d, false);
    return `Registered ${d.name}. Create a stream key for it below.`;
  });

  async function revokeDevice(d) {
    if (!await confirmAction(`Revoke device ${d.name}? All its stream keys stop working and a live publish from it ends.`, 'Revoke device')) return;
    try {
      await api('DELETE', `/api/v1/devices/${encodeURIComponent(d.id)}`);
      say($('devices-status'), `Revoked ${d.name} and its keys.`, 'ok');
      loadDevices();
    } catch (err) {
      say($('devices-status'), `Could not revoke ${d.name}: ${explain(err)}`, 'error');
    }
  }

  function selectDevice(d, focus) {
    selectedDevice = d;
    for (const tr of $('devices-table').tBodies[0].rows) {
      const on = tr.dataset.id === d.id;
      tr.classList.toggle('selected', on);
      const b = tr.querySelector('button[aria-controls]');
      if (b) b.setAttribute('aria-expanded', on ? 'true' : 'false');
    }
    $('keys-panel').hidden = false;
    $('keys-title').textContent = `Stream keys of ${d.name}`;
    refreshChannelPickers();
    loadKeys();
    if (focus) $('keys-title').focus();
  }

  function closeKeys() {
    selectedDevice = null;
    $('keys-panel').hidden = true;
    clearTable($('keys-table'));
  }

  async function loadKeys() {
    const d = selectedDevice;
    if (!d) return;
    const status = $('keys-status');
    say(status, 'Loading the keys…');
    try {
      const body = await api('GET', `/api/v1/devices/${encodeURIComponent(d.id)}/keys`);
      if (selectedDevice !== d) return;
      const items = Array.isArray(body && body.items) ? body.items : [];
      fillTable($('keys-table'), items.map(keyRow), 'No keys yet.');
      say(status, `${items.length} key${items.length === 1 ? '' : 's'}. Secrets are never shown again after creation.`);
    } catch (err) {
      clearTable($('keys-table'));
      say(status, `Could not load the keys: ${explain(err)}`, 'error');
    }
  }

  function keyRow(k) {
    const revoked = k.revoked_at != null;
    return el('tr', { 'data-id': k.id },
      el('th', { scope: 'row', class: 'mono', text: `${k.prefix}…` }),
      el('td', { text: channelLabel(k.channel_id) }),
      el('td', { text: fmtTime(k.created_at) }),
      el('td', { text: k.last_used_at != null ? fmtTime(k.last_used_at) : 'never' }),
      el('td', { class: 'mono', text: k.last_used_addr || '–' }),
      el('td', null, revoked ? pill('revoked') : pill('active', 'ok')),
      el('td', { class: 'actions' },
        button('Rotate', () => rotateKey(k), { label: `Rotate key ${k.prefix}`, disabled: revoked }),
        button('Revoke', () => revokeKey(k), { kind: 'danger', label: `Revoke key ${k.prefix}`, disabled: revoked })));
  }

  onSubmit($('key-create'), async (f) => {
    const d = selectedDevice;
    if (!d) throw new Error('Choose a device first.');
    if (!f.channel_id.value && !d.channel_id) throw new FormError('channel_id', 'This device has no channel: choose one for the key.');
    const body = f.channel_id.value ? { channel_id: f.channel_id.value } : {};
    const created = await api('POST', `/api/v1/devices/${encodeURIComponent(d.id)}/keys`, body);
    showStreamKey('Stream key created', created);
    loadKeys();
    return `Created key ${created.prefix}… for ${channelLabel(created.channel_id)}.`;
  });

  $('keys-reload').addEventListener('click', loadKeys);

  async function rotateKey(k) {
    if (!await confirmAction(`Rotate key ${k.prefix}…? A new key replaces it and the old one stops working now.`, 'Rotate key')) return;
    try {
      const created = await api('POST', `/api/v1/keys/${encodeURIComponent(k.id)}/rotate`);
      showStreamKey('Stream key rotated', created);
      loadKeys();
    } catch (err) {
      say($('keys-status'), `Could not rotate ${k.prefix}…: ${explain(err)}`, 'error');
    }
  }

  async function revokeKey(k) {
    if (!await confirmAction(`Revoke key ${k.prefix}…? Encoders using it are refused and a live publish with it ends.`, 'Revoke key')) return;
    try {
      await api('DELETE', `/api/v1/keys/${encodeURIComponent(k.id)}`);
      say($('keys-status'), `Revoked ${k.prefix}….`, 'ok');
      loadKeys();
    } catch (err) {
      say($('keys-status'), `Could not revoke ${k.prefix}…: ${explain(err)}`, 'error');
    }
  }

  // The RTMP ingest server: the server's RTMP port is not known to the page, so it
  // defaults to this host on 1935 and can be changed (remembered in this browser).
  function defaultIngest() {
    return `rtmp://${location.hostname}:1935/live`;
  }

  function ingestBase() {
    const v = $('ingest-base').value.trim().replace(/\/+$/, '');
    return /^rtmps?:\/\/[^/\s]+\/\S+$/.test(v) ? v : defaultIngest();
  }

  function stored(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null; // storage disabled: fall back to the default
    }
  }

  function store(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch {
      // storage disabled: the setting lasts until the page is reloaded
    }
  }

  $('ingest-base').value = stored(INGEST_STORAGE) || defaultIngest();
  $('ingest-base').addEventListener('change', () => {
    const input = $('ingest-base');
    const v = input.value.trim().replace(/\/+$/, '');
    if (!v || v === defaultIngest()) {
      store(INGEST_STORAGE, null);
      input.value = defaultIngest();
    } else if (/^rtmps?:\/\/[^/\s]+\/\S+$/.test(v)) {
      store(INGEST_STORAGE, v);
      input.value = v;
      input.removeAttribute('aria-invalid');
    } else {
      input.setAttribute('aria-invalid', 'true');
    }
  });

  // ---------------------------------------------------------------- one-time secrets

  // `response` is the API's answer; its secret goes into the dialog and nowhere else.
  function showStreamKey(title, response) {
    const base = ingestBase();
    openSecret(title, 'Stream key', response.secret);
    $('secret-rtmp-url').value = `${base}/${response.secret}`;
    $('secret-rtmp-server').textContent = base;
    $('secret-rtmp').hidden = false;
  }

  function openSecret(title, label, secret) {
    $('secret-title').textContent = title;
    $('secret-label').textContent = label;
    $('secret-value').value = typeof secret === 'string' ? secret : '';
    $('secret-rtmp').hidden = true;
    $('secret-rtmp-url').value = '';
    say($('secret-copied'), '');
    $('secret-dialog').showModal();
    $('secret-value').focus();
    $('secret-value').select();
  }

  $('secret-dialog').addEventListener('close', () => {
    $('secret-value').value = '';
    $('secret-rtmp-url').value = '';
    $('secret-rtmp-server').textContent = '';
    say($('secret-copied'), '');
  });
  $('secret-done').addEventListener('click', () => $('secret-dialog').close());

  for (const b of document.querySelectorAll('button[data-copy]')) {
    b.addEventListener('click', async () => {
      const input = $(b.dataset.copy);
      const status = $('secret-copied');
      try {
        if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
        await navigator.clipboard.writeText(input.value);
        say(status, 'Copied to the clipboard.', 'ok');
      } catch {
        // Plain http on another host has no clipboard API: the old way still works.
        input.focus();
        input.select();
        const copied = document.execCommand && document.execCommand('copy');
        say(status, copied ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C (⌘C) to copy.', copied ? 'ok' : undefined);
      }
    });
  }

  // ---------------------------------------------------------------- events

  const eventPager = makePager('events-pager', loadEvents);
  const eventRows = new Map();
  let liveState = null;

  function enterEvents() {
    refreshChannelPickers();
    loadEvents();
    openLiveState();
  }

  function leaveEvents() {
    if (liveState) liveState.close();
    liveState = null;
  }

  const FINAL_STATES = new Set(['ended', 'cancelled']);

  async function loadEvents() {
    const status = $('events-status');
    say(status, 'Loading the events…');
    try {
      const items = await loadPage('/api/v1/events', eventPager);
      eventRows.clear();
      fillTable($('events-table'), items.map(eventRow), eventPager.offset ? 'No more events.' : 'No events yet: schedule one above.');
      say(status, '');
    } catch (err) {
      eventRows.clear();
      clearTable($('events-table'));
      eventPager.update(null);
      say(status, `Could not load the events: ${explain(err)}`, 'error');
    }
  }

  function statePill(state) {
    const s = typeof state === 'string' ? state : 'unknown';
    return pill(s.replace('_', '-'), s);
  }

  function eventRow(ev) {
    const state = el('td', null, statePill(ev.state));
    const cancel = button('Cancel', () => cancelEvent(ev), {
      kind: 'danger', label: `Cancel event ${ev.title}`, disabled: FINAL_STATES.has(ev.state),
    });
    const art = safeHttpUrl(ev.artwork_url);
    const title = el('th', { scope: 'row' }, ev.title);
    if (art) title.append(' ', el('a', { href: art, rel: 'noopener noreferrer', target: '_blank', text: 'artwork' }));
    const tr = el('tr', { 'data-id': ev.id, 'data-state': ev.state },
      title,
      el('td', { text: ev.channel || channelLabel(ev.channel_id) }),
      el('td', { text: fmtTime(ev.scheduled_start) }),
      el('td', { text: fmtTime(ev.scheduled_end) }),
      state,
      el('td', { class: 'actions' }, cancel));
    eventRows.set(ev.id, { tr, state, cancel });
    return tr;
  }

  function applyState(id, state) {
    const r = eventRows.get(id);
    if (!r || typeof state !== 'string') return;
    r.tr.dataset.state = state;
    r.state.replaceChildren(statePill(state));
    r.cancel.disabled = FINAL_STATES.has(state);
  }

  function openLiveState() {
    const status = $('events-live');
    if (liveState || typeof EventSource !== 'function') return;
    say(status, 'Live updates: connecting…');
    const es = new EventSource('/api/v1/live-state');
    liveState = es;
    es.addEventListener('hello', () => say(status, 'Live updates: on. Event states change here as they happen.'));
    es.addEventListener('state', (e) => {
      let t;
      try {
        t = JSON.parse(e.data);
      } catch {
        return;
      }
      if (t && typeof t.event_id === 'string') applyState(t.event_id, t.state);
    });
    // Triggers were missed: the list is the truth again.
    es.addEventListener('resync', () => loadEvents());
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) {
        say(status, 'Live updates are unavailable on this server (GET /api/v1/live-state failed): reload the list to see state changes.', 'error');
        if (liveState === es) liveState = null;
      } else {
        say(status, 'Live updates: reconnecting…');
      }
    });
  }

  onSubmit($('event-create'), async (f) => {
    if (!f.channel_id.value) throw new FormError('channel_id', 'Choose the channel the event airs on.');
    const title = f.title.value.trim();
    if (!title) throw new FormError('title', 'Give the event a title.');
    // datetime-local has no zone: the browser reads it as local time.
    const start = new Date(f.scheduled_start.value).getTime();
    const end = new Date(f.scheduled_end.value).getTime();
    if (!Number.isFinite(start)) throw new FormError('scheduled_start', 'Give the start date and time.');
    if (!Number.isFinite(end)) throw new FormError('scheduled_end', 'Give the end date and time.');
    if (end <= start) throw new FormError('scheduled_end', 'The end must be after the start.');
    const body = { channel_id: f.channel_id.value, title, scheduled_start: start, scheduled_end: end };
    const art = f.artwork_url.value.trim();
    if (art) {
      if (!safeHttpUrl(art)) throw new FormError('artwork_url', 'The artwork URL must start with https:// or http://.');
      body.artwork_url = art;
    }
    if (f.preshow_lead_secs.value !== '') {
      const lead = Number(f.preshow_lead_secs.value);
      if (!Number.isInteger(lead) || lead < 0) throw new FormError('preshow_lead_secs', 'The pre-show lead is a whole number of seconds.');
      body.preshow_lead_secs = lead;
    }
    const ev = await api('POST', '/api/v1/events', body);
    $('event-create').reset();
    await loadEvents();
    return `Scheduled ${ev.title}.`;
  });

  async function cancelEvent(ev) {
    if (!await confirmAction(`Cancel the event ${ev.title}? Viewers waiting for it are told it is cancelled.`, 'Cancel event')) return;
    try {
      const updated = await api('POST', `/api/v1/events/${encodeURIComponent(ev.id)}/cancel`);
      applyState(ev.id, (updated && updated.state) || 'cancelled');
      say($('events-status'), `Cancelled ${ev.title}.`, 'ok');
    } catch (err) {
      say($('events-status'), `Could not cancel ${ev.title}: ${explain(err)}`, 'error');
    }
  }

  // ---------------------------------------------------------------- users

  const userPager = makePager('users-pager', loadUsers);

  function enterUsers() {
    loadUsers();
  }

  async function loadUsers() {
    const status = $('users-status');
    say(status, 'Loading the users…');
    try {
      const items = await loadPage('/api/v1/users', userPager);
      fillTable($('users-table'), items.map(userRow), 'No users.');
      say(status, '');
    } catch (err) {
      clearTable($('users-table'));
      userPager.update(null);
      say(status, `Could not load the users: ${explain(err)}`, 'error');
    }
  }

  function userRow(u) {
    const self = me && u.id === me.user_id;
    const toggle = u.disabled
      ? button('Enable', () => setDisabled(u, false), { label: `Enable ${u.email}` })
      : button('Disable', () => setDisabled(u, true), { kind: 'danger', label: `Disable ${u.email}`, disabled: self });
    if (self) toggle.title = 'You cannot disable yourself here.';
    return el('tr', { 'data-id': u.id },
      el('th', { scope: 'row', text: self ? `${u.email} (you)` : u.email }),
      el('td', { text: u.role }),
      el('td', null, u.disabled ? pill('disabled', 'err') : pill('active', 'ok')),
      el('td', { text: fmtTime(u.created_at) }),
      el('td', { class: 'actions' }, toggle));
  }

  async function setDisabled(u, disabled) {
    if (disabled && !await confirmAction(`Disable ${u.email}? They are signed out and cannot sign in until enabled again.`, 'Disable user')) return;
    try {
      await api('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { disabled });
      say($('users-status'), `${disabled ? 'Disabled' : 'Enabled'} ${u.email}.`, 'ok');
      loadUsers();
    } catch (err) {
      say($('users-status'), `Could not change ${u.email}: ${explain(err)}`, 'error');
    }
  }

  onSubmit($('user-create'), async (f) => {
    const email = f.email.value.trim();
    if (!email.includes('@')) throw new FormError('email', 'Give an email address.');
    if (f.password.value.length < 8) throw new FormError('password', 'The password needs at least 8 characters.');
    const u = await api('POST', '/api/v1/users', { email, password: f.password.value, role: f.role.value });
    $('user-create').reset();
    await loadUsers();
    return `Added ${u.email} (${u.role}).`;
  });

  // ---------------------------------------------------------------- webhooks

  function enterWebhooks() {
    loadWebhooks();
  }

  async function loadWebhooks() {
    const status = $('webhooks-status');
    say(status, 'Loading the webhooks…');
    try {
      const body = await api('GET', '/api/v1/webhooks');
      const items = Array.isArray(body && body.items) ? body.items : [];
      fillTable($('webhooks-table'), items.map(webhookRow), 'No webhooks yet.');
      say(status, '');
    } catch (err) {
      clearTable($('webhooks-table'));
      say(status, `Could not load the webhooks: ${explain(err)}`, 'error');
    }
  }

  function webhookRow(w) {
    return el('tr', { 'data-id': w.id },
      el('th', { scope: 'row', class: 'mono', text: w.url }),
      el('td', { text: Array.isArray(w.events) ? w.events.join(', ') : '' }),
      el('td', null, w.active === false ? pill('paused', 'warn') : pill('active', 'ok')),
      el('td', { text: fmtTime(w.created_at) }),
      el('td', { class: 'actions' },
        button('Delete', () => deleteWebhook(w), { kind: 'danger', label: `Delete webhook ${w.url}` })));
  }

  onSubmit($('webhook-create'), async (f) => {
    const url = f.url.value.trim();
    if (!safeHttpUrl(url)) throw new FormError('url', 'The URL must start with https:// or http://.');
    const events = [...$('webhook-create').querySelectorAll('input[name="events"]:checked')].map((c) => c.value);
    if (!events.length) throw new Error('Tick at least one event.');
    const created = await api('POST', '/api/v1/webhooks', { url, events });
    $('webhook-create').reset();
    openSecret('Webhook created', 'Signing secret', created && created.secret);
    loadWebhooks();
    return `Added a webhook to ${created.url}.`;
  });

  async function deleteWebhook(w) {
    if (!await confirmAction(`Delete the webhook to ${w.url}? It receives nothing from now on.`, 'Delete webhook')) return;
    try {
      await api('DELETE', `/api/v1/webhooks/${encodeURIComponent(w.id)}`);
      say($('webhooks-status'), 'Deleted the webhook.', 'ok');
      loadWebhooks();
    } catch (err) {
      say($('webhooks-status'), `Could not delete the webhook: ${explain(err)}`, 'error');
    }
  }

  boot();
})();
