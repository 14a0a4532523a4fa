// The studio (`/studio`): go live from the browser over WHIP. Pick a camera and
// microphone, or a screen or tab with its audio; choose the resolution, frame rate and
// bitrate; preview; go live with one click. Live statistics (bitrate, frame rate,
// round trip, loss) are shown twice a second and published for tests as
// `window.starlingStudio`.
//
// The stream key is typed in (never put in the URL's query, which servers log); a
// fragment `#channel=NAME&key=KEY` fills the form, and `&autostart=1` goes live at once
// (how the browser tests drive it).
//
// Signed in (the session cookie of /admin's login), no key is needed: the page lists
// the channels of one's organisation, and going live mints the key it publishes with.
// The key belongs to one device of kind `studio`, "Browser studio", made on first use;
// the device has one key per channel, rotated at each go-live, so no secret is ever
// stored in the browser and an earlier secret stops working for new publishes.
'use strict';

(() => {
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const TICK_MS = 500;
  const STUDIO_DEVICE = 'Browser studio';

  const $ = (id) => document.getElementById(id);
  const form = $('studio-form');
  const preview = $('preview');
  const message = $('studio-message');
  const liveButton = $('live-button');
  const previewButton = $('preview-button');
  const out = {
    state: $('stat-state'),
    bitrate: $('stat-bitrate'),
    fps: $('stat-fps'),
    rtt: $('stat-rtt'),
    lost: $('stat-lost'),
    watch: $('watch-link'),
  };

  const status = {
    state: 'idle',
    message: '',
    bitrate: null,
    fps: null,
    rtt: null,
    lost: 0,
    width: null,
    height: null,
    errors: [],
  };
  window.starlingStudio = status;

  let media = null;
  let rtc = null;
  let lastStats = null;
  // Signed in: { channels: [{ id, name }] }; null: the key is typed in.
  let account = null;

  function setState(state, text = '') {
    status.state = state;
    status.message = text;
    out.state.textContent = state;
    message.hidden = text === '';
    message.textContent = text;
    liveButton.textContent = state === 'live' || state === 'connecting' ? 'Stop' : 'Go live';
  }

  // The control plane's API with the session cookie; its JSON, or an Error carrying the
  // API's own message (e.g. a role that may not manage devices).
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const why = (data && data.error && data.error.message) || `HTTP ${res.status}`;
      throw new Error(`${method} ${path}: ${why}`);
    }
    return data;
  }

  // Signed in? Then the channel list replaces the name and key fields.
  async function signIn() {
    let me;
    try {
      me = await api('GET', '/api/v1/me');
    } catch {
      return; // not signed in (401): the typed-in key it is
    }
    const channels = ((await api('GET', '/api/v1/channels?limit=200')) || {}).items || [];
    account = { channels: channels.map((c) => ({ id: c.id, name: c.name })) };
    const pick = $('channel-pick');
    pick.replaceChildren(...account.channels.map((c) => new Option(c.name, c.name)));
    const wanted = $('channel').value.trim();
    if (account.channels.some((c) => c.name === wanted)) pick.value = wanted;
    $('account').textContent = channels.length
      ? `Signed in (${me.role}): going live makes this browser's key for the channel.`
      : `Signed in (${me.role}), but your organisation has no channel yet: make one in /admin.`;
    $('account').hidden = false;
    $('channel-pick-label').hidden = false;
    $('signin-hint').hidden = true;
    for (const id of ['channel-label', 'key-label']) $(id).hidden = true;
    $('channel').required = false;
    $('key').required = false;
  }

  // A fresh secret for `name` on the studio device (made, and its key, on first use).
  async function mintKey(name) {
    const ch = account.channels.find((c) => c.name === name);
    if (!ch) throw new Error(`${name} is not a channel of your organisation`);
    const devices = (await api('GET', '/api/v1/devices')).items;
    let dev = devices.find((d) => d.kind === 'studio' && d.name === STUDIO_DEVICE && !d.revoked_at);
    if (!dev) dev = await api('POST', '/api/v1/devices', { name: STUDIO_DEVICE, kind: 'studio' });
    const keys = (await api('GET', `/api/v1/devices/${encodeURIComponent(dev.id)}/keys`)).items;
    const key = keys.find((k) => k.channel_id === ch.id && !k.revoked_at);
    const made = key
      ? await api('POST', `/api/v1/keys/${encodeURIComponent(key.id)}/rotate`)
      : await api('POST', `/api/v1/devices/${encodeURIComponent(dev.id)}/keys`, { channel_id: ch.id });
    return made.secret;
  }

  function settings() {
    const [width, height] = $('resolution').value.split('x').map(Number);
    return {
      channel: account ? $('channel-pick').value : $('channel').value.trim(),
      key: $('key').value,
      source: $('source').value,
      width,
      height,
      fps: Number($('fps').value),
      bitrate: Number($('bitrate').value) * 1000,
    };
  }

  async function capture(s) {
    const video = { width: { ideal: s.width }, height: { ideal: s.height }, frameRate: { ideal: s.fps } };
    if (s.source === 'screen') {
      return navigator.mediaDevices.getDisplayMedia({ video, audio: true });
    }
    return navigator.mediaDevices.getUserMedia({ video, audio: true });
  }

  async function startPreview() {
    stopMedia();
    const s = settings();
    try {
      media = await capture(s);
    } catch (err) {
      setState('error', `No ${s.source === 'screen' ? 'screen' : 'camera or microphone'}: ${err.message}`);
      status.errors.push(String(err.message));
      return false;
    }
    preview.srcObject = media;
    // The browser ends a screen share from its own bar: stop the broadcast with it.
    for (const t of media.getVideoTracks()) t.addEventListener('ended', () => stopLive('The source ended.'));
    if (status.state === 'idle' || status.state === 'error') setState('preview');
    return true;
  }

  function stopMedia() {
    if (media) for (const t of media.getTracks()) t.stop();
    media = null;
    preview.srcObject = null;
  }

  async function goLive() {
    const s = settings();
    if (!NAME_RE.test(s.channel)) {
      setState('error', 'A channel name is 1 to 64 letters, digits, "_" or "-".');
      return;
    }
    if (!s.key && !account) {
      setState('error', 'The stream key is needed to go live (or sign in).');
      return;
    }
    if (!media && !(await startPreview())) return;
    setState('connecting', 'Connecting…');
    try {
      const key = s.key || (await mintKey(s.channel));
      rtc = await window.StarlingRTC.publish(`/whip/${s.channel}`, key, media, { maxBitrate: s.bitrate });
      await rtc.connected;
    } catch (err) {
      if (rtc) rtc.close();
      rtc = null;
      status.errors.push(String(err.message));
      setState('error', `Could not go live: ${err.message}`);
      return;
    }
    out.watch.href = `/watch/${s.channel}`;
    out.watch.textContent = `/watch/${s.channel}`;
    setState('live');
    rtc.pc.addEventListener('connectionstatechange', () => {
      if (rtc && ['failed', 'disconnected', 'closed'].includes(rtc.pc.connectionState)) {
        stopLive('The connection to the server dropped.');
      }
    });
  }

  function stopLive(text = '') {
    if (rtc) rtc.close();
    rtc = null;
    lastStats = null;
    setState(media ? 'preview' : 'idle', text);
  }

  function fmtRate(b) {
    if (b === null || !Number.isFinite(b)) return '–';
    return b >= 1e6 ? `${(b / 1e6).toFixed(2)} Mbit/s` : `${Math.round(b / 1e3)} kbit/s`;
  }

  async function tick() {
    if (!rtc) return;
    const s = await window.StarlingRTC.stats(rtc.pc, lastStats);
    lastStats = s;
    Object.assign(status, { bitrate: s.bitrate, fps: s.fps, rtt: s.rtt, lost: s.lost, width: s.width, height: s.height });
    out.bitrate.textContent = fmtRate(s.bitrate);
    out.fps.textContent = s.fps === null ? '–' : `${Math.round(s.fps)} fps`;
    out.rtt.textContent = s.rtt === null ? '–' : `${Math.round(s.rtt * 1000)} ms`;
    out.lost.textContent = String(s.lost);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (rtc) stopLive();
    else goLive();
  });
  previewButton.addEventListener('click', () => startPreview());
  window.addEventListener('pagehide', () => {
    if (rtc) rtc.close();
  });

  // `#channel=NAME&key=KEY[&autostart=1][&resolution=WxH][&fps=N]` fills the form.
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.has('channel')) $('channel').value = frag.get('channel');
  if (frag.has('key')) $('key').value = frag.get('key');
  if (frag.has('resolution')) $('resolution').value = frag.get('resolution');
  if (frag.has('fps')) $('fps').value = frag.get('fps');
  if (frag.has('key')) history.replaceState(null, '', location.pathname);

  setInterval(() => {
    tick().catch((err) => status.errors.push(String(err.message)));
  }, TICK_MS);
  // A key in the fragment wins over signing in (the tests' way in without an account).
  const ready = frag.has('key') ? Promise.resolve() : signIn().catch((err) => status.errors.push(String(err.message)));
  ready.then(() => {
    status.signedIn = account !== null;
    if (frag.get('autostart') === '1') goLive();
  });
})();
