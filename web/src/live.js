// The live channel list (`/`): polls GET /api/v1/live every 5 s and links each
// channel to its player page, with its small picture (/live/NAME/thumb-small.jpg,
// renewed by the server every few seconds). Everything that comes from the API is
// inserted as text, never as HTML.
'use strict';

(() => {
  const POLL_MS = 5000;
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const list = document.getElementById('channels');
  const status = document.getElementById('live-status');

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function liveFor(since) {
    const t = Date.parse(since);
    if (!Number.isFinite(t)) return null;
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function describe(ch) {
    const parts = [];
    const v = ch.video;
    if (v && v.width && v.height) {
      const fps = Number.isFinite(v.frame_rate) && v.frame_rate > 0 ? ` ${Math.round(v.frame_rate)} fps` : '';
      parts.push(`${v.width}×${v.height}${fps}`);
    }
    if (v && v.codec) parts.push(v.codec);
    if (ch.audio && ch.audio.codec) parts.push(ch.audio.codec);
    if (!v && ch.audio) parts.push('audio only');
    return parts.join(' · ');
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
    node.hidden = text === '';
  }

  function extraText(ch) {
    const extra = [];
    const since = liveFor(ch.since);
    if (since) extra.push(`live for ${since}`);
    if (Number.isFinite(ch.viewers)) extra.push(`${ch.viewers} watching`);
    return extra.join(' · ');
  }

  // One row per channel, kept across polls and updated in place, so a focused link
  // keeps its focus and screen readers hear only what changed.
  const rows = new Map();

  function row(name) {
    const li = el('li', 'channel');
    const a = el('a');
    a.href = `/watch/${encodeURIComponent(name)}`;
    // Decorative (the name follows as text); hidden until a picture exists.
    const thumb = el('img', 'thumb');
    thumb.alt = '';
    thumb.width = 320;
    thumb.height = 180;
    thumb.hidden = true;
    thumb.addEventListener('load', () => { thumb.hidden = false; });
    thumb.addEventListener('error', () => { thumb.hidden = true; });
    const title = el('div', 'name');
    title.append(el('span', 'badge', 'LIVE'), document.createTextNode(name));
    const desc = el('p', 'meta');
    const extra = el('p', 'meta');
    a.append(thumb, title, desc, extra);
    li.append(a);
    return { li, desc, extra, thumb };
  }

  function render(channels) {
    const live = channels.filter((ch) => ch && typeof ch.name === 'string' && NAME_RE.test(ch.name));
    live.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const names = new Set(live.map((ch) => ch.name));
    for (const [name, r] of rows) {
      if (!names.has(name)) {
        r.li.remove();
        rows.delete(name);
      }
    }
    let prev = null;
    for (const ch of live) {
      let r = rows.get(ch.name);
      if (!r) {
        r = row(ch.name);
        rows.set(ch.name, r);
      }
      // A new URL every 10 s (the server renews pictures every few seconds; its
      // responses may be cached for 5).
      const thumb = `/live/${encodeURIComponent(ch.name)}/thumb-small.jpg?v=${Math.floor(Date.now() / 10000)}`;
      if (r.thumb.getAttribute('src') !== thumb) r.thumb.src = thumb;
      setText(r.desc, describe(ch));
      setText(r.extra, extraText(ch));
      const at = prev ? prev.nextSibling : list.firstChild;
      if (at !== r.li) list.insertBefore(r.li, at);
      prev = r.li;
    }
    status.classList.remove('error');
    setText(status, live.length === 0
      ? 'Nothing is live right now. This page checks again every 5 seconds.'
      : `${live.length} channel${live.length === 1 ? '' : 's'} live now.`);
  }

  let timer = null;
  async function poll() {
    clearTimeout(timer);
    try {
      // credentials: 'omit': the home page is the public list even for a signed-in admin
      // (whose cookie would add the organisation's unlisted and private channels).
      const res = await fetch('/api/v1/live', { cache: 'no-store', credentials: 'omit', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      const body = await res.json();
      render(Array.isArray(body && body.channels) ? body.channels : []);
    } catch (err) {
      status.classList.add('error');
      setText(status, `Could not load the live channels (${err.message}). Retrying in 5 seconds.`);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  // Don't poll from a hidden tab; catch up as soon as it is visible again.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer);
    else poll();
  });
  poll();
})();
