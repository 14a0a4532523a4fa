// The player page (`/watch/CHANNEL`): plays /live/CHANNEL/index.m3u8 with hls.js in
// low-latency mode, or with the browser's native HLS (Safari, iOS) where Media Source
// Extensions are missing. Four times a second it shows, and publishes for tests as
// `window.starlingStats`, the live latency, the buffer ahead, the rendition and the state.
//
// States: loading → playing ⇄ stalled, paused; offline (not live yet) and ended retry
// every few seconds; error shows the message and retries too.
//
// Tuning: hls.js plays as far behind the live edge as the playlist says (PART-HOLD-BACK
// for LL-HLS, three parts; HOLD-BACK for standard-latency channels), as the HLS spec
// asks of players. `?sync=SECONDS` overrides it (clamped to 0.5–30).
//
// In a cluster the page asks the Usher (`/usher/play/CHANNEL`, `?region=` handed on) which
// edge to play the channel's playlists from; without one it plays from this node.
// `?player=dash` plays the channel's DASH MPD (/live/CHANNEL/manifest.mpd) with dash.js
// instead, low latency where the MPD says so; `?sync=` sets its live delay.
//
// `?replay=1` plays the channel's last run from its start with hls.js: its recording
// once the stream has ended (kept as VOD, across restarts), its DVR window while live.
// `?clip=RUN/FIRST-LAST` plays a highlight clip (the API lists them) the same way.
//
// Real time: WebRTC (WHEP, /whep/CHANNEL: sub-second, H.264 and Opus as they come),
// falling back to LL-HLS when WebRTC cannot connect here (UDP blocked). Chosen by itself
// for a channel whose latency mode is `realtime` (its multivariant playlist answers with
// `Starling-Latency-Mode: realtime`, asked with a HEAD before the first player starts);
// `?realtime=1` forces it for any channel, `?realtime=0` keeps to HLS.
//
// P2P: for a channel whose latency mode is `p2p` (`Starling-Latency-Mode: p2p`), or with
// `?p2p=1`, hls.js plays a few segments behind live and fetches whole segments from other
// viewers where it can (p2p.js; the edge backs every one up), checked against the
// origin's signed digests; `?p2p=0` never. `window.starlingStats.p2p` says what came
// from where.
//
// Upright screens: a channel reframed to 9:16 (its ladder has the vertical rendition)
// plays /live/CHANNEL/vertical/index.m3u8 (or its MPD) on a portrait screen, and the
// ladder again when the screen turns; `?view=vertical` or `?view=landscape` forces one.
// `window.starlingStats.view` says which.
//
// Private channels: `?token=TOKEN` (a playback token from the API) is passed on to the
// playlist URL, for hls.js and native HLS alike; the origin then writes it into every
// URI of the playlists it serves, so segments and parts carry it too.
'use strict';

(() => {
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const TICK_MS = 250;
  const OFFLINE_RETRY_S = 3;
  const ERROR_RETRY_S = 5;
  const MAX_ERRORS_KEPT = 50;
  // Playback counts as stalled when currentTime has not moved for this long.
  const STALL_MS = 1000;

  const params = new URLSearchParams(location.search);
  const syncParam = Number.parseFloat(params.get('sync') || '');
  const LIVE_SYNC_S = Number.isFinite(syncParam) ? Math.min(30, Math.max(0.5, syncParam)) : null;
  const token = params.get('token') || '';
  // `?player=dash`: the channel's DASH MPD in dash.js (loaded only then) instead of HLS.
  const useDash = params.get('player') === 'dash';
  // `?clip=RUN/FIRST-LAST`: a highlight clip of the channel's recording, as the API
  // lists it (`/vod/CHANNEL/RUN/clip-FIRST-LAST.m3u8`), from its start; upright on a
  // portrait screen when it has a vertical version.
  const clipMatch = (params.get('clip') || '').match(/^([0-9a-f]{16})\/(\d{1,19})-(\d{1,19})$/);
  // `?replay=1`: play the channel's last run from its start, ended or not (its recording
  // after the stream, or the DVR window while live), instead of joining the live edge.
  // A clip plays as a replay does.
  const replay = params.get('replay') === '1' || clipMatch !== null;
  // `?p2p=1`: the P2P grid (whole segments, a few behind live; WebRTC data channels);
  // `?p2p=0`: never. Otherwise as the channel's latency mode says (`latencyMode`).
  const p2pParam = params.get('p2p');
  const canP2p = !replay && !!window.StarlingP2P && !!window.RTCPeerConnection && !!window.crypto && !!crypto.subtle;
  let p2pMode = p2pParam === '1' && canP2p;
  // P2P plays this far behind live: new segments are due seconds after they appear,
  // time for one viewer to fetch each from the edge and the others from it.
  const P2P_SYNC_S = 8;
  // `?realtime=1`: WHEP, with LL-HLS as the fallback; `?realtime=0`: never. Otherwise
  // null until the channel's playlist says (`latencyMode`); `?player=dash`,
  // `?replay=1` and `?rendition=` ask for a player of their own.
  const realtimeParam = params.get('realtime');
  const canRealtime = !replay && !!window.RTCPeerConnection;
  let realtime = realtimeParam === '1' ? canRealtime : false;
  if (realtimeParam === null && canRealtime && !useDash && !p2pMode && !params.get('rendition')) realtime = null;
  // The channel's latency mode is asked once it can matter (it is not forced).
  let modeKnown = realtime !== null && !(p2pParam === null && canP2p && !useDash && !params.get('rendition'));

  const video = document.getElementById('video');
  const unmute = document.getElementById('unmute');
  const message = document.getElementById('player-message');
  const heading = document.getElementById('channel-name');
  const out = {
    state: document.getElementById('stat-state'),
    latency: document.getElementById('stat-latency'),
    buffer: document.getElementById('stat-buffer'),
    level: document.getElementById('stat-level'),
    p2p: document.getElementById('stat-p2p'),
    p2pRow: document.getElementById('stat-p2p-row'),
  };

  // Read by the browser test harness (web/tests/watch.mjs); the object is updated in
  // place so a reference taken early stays current.
  const stats = {
    playing: false,
    currentTime: 0,
    latency: null,
    // Now minus the EXT-X-PROGRAM-DATE-TIME of the frame on screen: the latency from
    // the server's clock, when the playlist carries dates (null otherwise).
    wallLatency: null,
    buffer: 0,
    level: null,
    state: 'loading',
    message: '',
    mode: null,
    // Why WHEP was given up for LL-HLS (real time only).
    fallback: null,
    errors: [],
    // With `?p2p=1`: bytes from peers and from the edge, peers, bad pieces (p2p.js).
    p2p: null,
    // Time playing and stalled, and from the first start to the first frame (ms).
    playedMs: 0,
    rebufferMs: 0,
    startupMs: null,
    // `landscape` (the ladder) or `vertical` (the 9:16 rendition).
    view: 'landscape',
  };
  window.starlingStats = stats;

  let hls = null;
  let agent = null;
  let dash = null;
  let rtc = null;
  // Set once WHEP failed to connect here: the retries go to LL-HLS.
  let whepFailed = false;
  let retryTimer = null;
  let lastTime = -1;
  let lastAdvanceAt = 0;
  let advanced = false;
  let mediaRecoveries = 0;
  let autoplayBlocked = false;

  function setState(state, text = '') {
    stats.state = state;
    stats.message = text;
    stats.playing = state === 'playing';
    out.state.dataset.state = state;
    // The card shows the state; the message sits over the video (and in stats.message).
    if (out.state.textContent !== state) out.state.textContent = state;
    out.state.title = text;
    const show = text !== '' && state !== 'playing';
    message.hidden = !show;
    if (show && message.textContent !== text) message.textContent = text;
  }

  function recordError(entry) {
    stats.errors.push({ time: new Date().toISOString(), ...entry });
    if (stats.errors.length > MAX_ERRORS_KEPT) stats.errors.shift();
  }

  function channelFromPath() {
    const m = location.pathname.match(/^\/watch\/([^/]+)\/?$/);
    if (!m) return null;
    try {
      const name = decodeURIComponent(m[1]);
      return NAME_RE.test(name) ? name : null;
    } catch {
      return null;
    }
  }

  const channel = channelFromPath();
  if (!channel) {
    heading.textContent = 'Unknown channel';
    setState('error', 'A channel name is 1 to 64 letters, digits, "_" or "-".');
    return;
  }
  heading.textContent = channel;
  document.title = `${channel} · Starling`;
  const query = token ? `?token=${encodeURIComponent(token)}` : '';
  // `?rendition=360p`: one rendition's media playlist alone (video only), as a test or a
  // measurement of one rung wants it; the multivariant playlist otherwise.
  const rendition = params.get('rendition') || '';
  const clipPath = clipMatch ? `/vod/${channel}/${clipMatch[1]}/clip-${clipMatch[2]}-${clipMatch[3]}` : '';
  const ladderPath = clipMatch
    ? `${clipPath}.m3u8${query}`
    : /^[a-z0-9][a-z0-9_-]{0,15}$/.test(rendition)
      ? `/live/${channel}/${rendition}/index.m3u8${query}`
      : `/live/${channel}/index.m3u8${query}`;
  // The vertical playlist: the live channel's, or the clip's.
  const verticalPath = clipMatch ? `${clipPath}-vertical.m3u8${query}` : `/live/${channel}/vertical/index.m3u8${query}`;
  const ladderMpd = `/live/${channel}/manifest.mpd${query}`;
  let srcPath = ladderPath;
  let mpdPath = ladderMpd;
  // The view: `?view=` forced, else the screen's orientation (live, the whole ladder).
  const viewParam = params.get('view');
  const portrait = window.matchMedia ? window.matchMedia('(orientation: portrait)') : null;
  function wantsVertical() {
    if ((replay && !clipMatch) || rendition) return false;
    if (viewParam === 'vertical') return true;
    if (viewParam === 'landscape') return false;
    return !!(portrait && portrait.matches);
  }
  // The vertical playlist answers (the channel is live and reframed): asked at every
  // start while wanted and not found, since reframing begins with the publish.
  async function hasVertical() {
    try {
      const res = await fetch(verticalPath, { method: 'HEAD', cache: 'no-store' });
      return res.ok;
    } catch {
      return false;
    }
  }
  // Where the playlists come from: this node, or in a cluster the edge the Usher names
  // (asked once, at the first start; `?region=` is handed to it).
  let src = srcPath;
  let mpd = mpdPath;
  let ushered = false;
  const region = params.get('region') || '';

  // The edge to play from, as `scheme://host:port`, or '' to play from this node: no
  // Usher here (an edge serving this page), no cluster, or no edge known.
  async function usherBase() {
    try {
      const q = /^[A-Za-z0-9_-]{1,64}$/.test(region) ? `?region=${region}` : '';
      const res = await fetch(`/usher/play/${channel}${q}`, { cache: 'no-store' });
      if (!res.ok) return '';
      const answer = await res.json();
      if (answer.local || typeof answer.url !== 'string') return '';
      return new URL(answer.url).origin;
    } catch {
      return '';
    }
  }

  // What a 401/403 from the origin means to a viewer (the token itself is never shown).
  function accessMessage(code) {
    if (code === 401) return `${channel} is private: open it with a link that carries a playback token (?token=…).`;
    if (code === 403) return `The playback token for ${channel} is not valid (expired, altered or for another channel).`;
    return null;
  }

  function teardown() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (hls) {
      hls.destroy();
      hls = null;
    }
    if (agent) {
      agent.destroy();
      agent = null;
    }
    if (dash) {
      dash.destroy();
      dash = null;
    }
    if (rtc) {
      rtc.close();
      rtc = null;
      video.srcObject = null;
    }
    if (video.getAttribute('src')) {
      video.removeAttribute('src');
      video.load();
    }
    lastTime = -1;
    advanced = false;
  }

  function retryLater(state, text, seconds) {
    teardown();
    setState(state, `${text} Checking again every ${seconds} seconds.`);
    retryTimer = setTimeout(start, seconds * 1000);
  }

  function play() {
    const p = video.play();
    if (p && typeof p.catch === 'function') {
      p.catch((err) => {
        // Muted autoplay is allowed almost everywhere; if it is not, wait for a click.
        if (err && err.name === 'NotAllowedError') autoplayBlocked = true;
      });
    }
  }

  // The channel's latency mode, from its multivariant playlist's `Starling-Latency-Mode`
  // header, which a real-time or P2P channel sends from its publish's start (before the
  // first segment, with the 404 "not live yet"): `realtime`, `p2p`, '' once it is live
  // without it, or null while that cannot be known (not live, unreachable): asked again
  // at the next start.
  async function latencyMode() {
    try {
      const res = await fetch(src, { method: 'HEAD', cache: 'no-store' });
      const mode = res.headers.get('starling-latency-mode');
      if (mode === 'realtime' || mode === 'p2p') return mode;
      return res.ok ? '' : null;
    } catch {
      return null;
    }
  }

  async function start() {
    clearTimeout(retryTimer);
    retryTimer = null;
    mediaRecoveries = 0;
    setState('loading', 'Loading the stream…');
    const vertical = wantsVertical() && await hasVertical();
    const view = vertical ? 'vertical' : 'landscape';
    if (view !== stats.view) {
      stats.view = view;
      srcPath = vertical ? verticalPath : ladderPath;
      mpdPath = vertical ? `/live/${channel}/vertical/manifest.mpd${query}` : ladderMpd;
      ushered = false;
    }
    // A recording plays from this node (an edge serves live channels only).
    if (replay) {
      src = srcPath;
      mpd = mpdPath;
    } else if (!ushered) {
      ushered = true;
      const base = await usherBase();
      src = base + srcPath;
      mpd = base + mpdPath;
    }
    if (!modeKnown) {
      const mode = await latencyMode();
      if (mode !== null) {
        modeKnown = true;
        if (realtime === null) realtime = mode === 'realtime';
        if (mode === 'p2p' && p2pParam === null && canP2p) p2pMode = true;
      }
      if (retryTimer !== null) return;
    }
    if (realtime && !whepFailed) {
      startWhep();
    } else if (useDash) {
      loadDashJs().then(startDashJs, (err) => setState('error', `Could not load the DASH player: ${err.message}.`));
    } else if (window.Hls && window.Hls.isSupported()) {
      startHlsJs();
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      startNative();
    } else {
      setState('error', 'This browser cannot play HLS: it has neither Media Source Extensions nor native HLS.');
    }
  }

  function startHlsJs() {
    const Hls = window.Hls;
    stats.mode = 'hls.js';
    const sync = LIVE_SYNC_S === null ? {} : {
      // Aim this far behind the live edge instead of the playlist's hold-back; keep it
      // at or above 3 part durations.
      liveSyncDuration: LIVE_SYNC_S,
      // Further behind than this (after a stall), jump back to the live sync point.
      liveMaxLatencyDuration: Math.max(6, LIVE_SYNC_S * 3),
    };
    let p2p = {};
    if (p2pMode) {
      const base = /^https?:/.test(src) ? new URL(src).origin : '';
      agent = new window.StarlingP2P.Agent({
        channel,
        base,
        token,
        region,
        video,
        qoe: () => ({ playedMs: stats.playedMs, rebufferMs: stats.rebufferMs, startupMs: stats.startupMs }),
      });
      stats.p2p = agent.stats;
      p2p = {
        fLoader: window.StarlingP2P.loader(Hls, agent),
        liveSyncDuration: LIVE_SYNC_S === null ? P2P_SYNC_S : LIVE_SYNC_S,
        liveMaxLatencyDuration: 3 * (LIVE_SYNC_S === null ? P2P_SYNC_S : LIVE_SYNC_S),
      };
      stats.mode = 'hls.js+p2p';
    }
    hls = new Hls({
      lowLatencyMode: !replay && !p2pMode,
      ...(replay ? { startPosition: 0 } : sync),
      ...p2p,
      // Catch up by playing up to 1.5× instead of jumping when a little late.
      maxLiveSyncPlaybackRate: 1.5,
      backBufferLength: 30,
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => play());
    // A playlist with EXT-X-ENDLIST before we have played anything is a stream that
    // already ended (the server keeps it for a while): don't replay it as a video.
    hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
      if (data.details && data.details.live === false && !advanced && !replay) {
        retryLater('ended', 'The stream has ended.', OFFLINE_RETRY_S);
      }
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      const code = data.response && data.response.code;
      const text = (data.error && data.error.message) || data.reason || '';
      recordError({ type: data.type, details: data.details, fatal: !!data.fatal, code: code || null, message: text });
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
        mediaRecoveries += 1;
        hls.recoverMediaError();
        return;
      }
      if (accessMessage(code)) {
        retryLater('error', accessMessage(code), ERROR_RETRY_S);
      } else if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR && (code === 404 || code === 410)) {
        retryLater('offline', `${channel} is not live right now.`, OFFLINE_RETRY_S);
      } else if (data.details === Hls.ErrorDetails.LEVEL_LOAD_ERROR && (code === 404 || code === 410)) {
        retryLater('ended', 'The stream has ended.', OFFLINE_RETRY_S);
      } else {
        const what = `${data.details}${code ? ` (HTTP ${code})` : ''}${text ? `: ${text}` : ''}`;
        retryLater('error', `Playback failed: ${what}.`, ERROR_RETRY_S);
      }
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  async function startWhep() {
    stats.mode = 'whep';
    const url = `/whep/${channel}`;
    try {
      rtc = await window.StarlingRTC.play(url, video, { token });
      // For the browser tests' statistics (web/tests/realtime.mjs).
      window.starlingRtcPc = rtc.pc;
      await rtc.connected;
      play();
    } catch (err) {
      if (rtc) {
        rtc.close();
        rtc = null;
      }
      const code = err.status || null;
      recordError({ type: 'whep', details: code ? `HTTP ${code}` : 'connect', fatal: true, code, message: err.message });
      if (accessMessage(code)) {
        retryLater('error', accessMessage(code), ERROR_RETRY_S);
      } else if (code === 404) {
        retryLater('offline', `${channel} is not live right now.`, OFFLINE_RETRY_S);
      } else {
        // WebRTC cannot be had here (UDP blocked, no usable codec): LL-HLS instead.
        whepFailed = true;
        stats.fallback = err.message;
        stats.mode = null;
        start();
      }
      return;
    }
    rtc.pc.addEventListener('connectionstatechange', () => {
      if (rtc && (rtc.pc.connectionState === 'failed' || rtc.pc.connectionState === 'disconnected')) {
        retryLater('error', 'The real-time connection dropped.', ERROR_RETRY_S);
      }
    });
  }

  // dash.js is large (~700 kB): the page names its asset and loads it on demand.
  function loadDashJs() {
    if (window.dashjs) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = document.getElementById('main').dataset.dashjs;
      s.onload = () => resolve();
      s.onerror = () => reject(new Error('dash.js did not load'));
      document.head.appendChild(s);
    });
  }

  function startDashJs() {
    const { MediaPlayer } = window.dashjs;
    stats.mode = 'dash.js';
    dash = MediaPlayer().create();
    // Low-latency DASH: the MPD's ServiceDescription sets the target latency, the
    // segment in progress arrives chunked (availabilityTimeComplete=false); catch up by
    // playing faster rather than jumping.
    dash.updateSettings({
      streaming: {
        ...(LIVE_SYNC_S === null ? {} : { delay: { liveDelay: LIVE_SYNC_S } }),
        liveCatchup: { enabled: true, playbackRate: { min: -0.3, max: 0.5 } },
        buffer: { fastSwitchEnabled: true },
      },
    });
    dash.on(MediaPlayer.events.ERROR, (e) => {
      const err = e.error || {};
      const text = err.message || String(err.code || 'error');
      recordError({ type: 'dash.js', details: String(err.code || ''), fatal: true, code: null, message: text });
      // A manifest that cannot be loaded: not live (404) or not allowed (401/403).
      const status = /\b(401|403|404|410)\b/.exec(text);
      const code = status ? Number(status[1]) : null;
      if (accessMessage(code)) retryLater('error', accessMessage(code), ERROR_RETRY_S);
      else if (code === 404 || code === 410) retryLater('offline', `${channel} is not live right now.`, OFFLINE_RETRY_S);
      else retryLater('error', `Playback failed: ${text}.`, ERROR_RETRY_S);
    });
    dash.on(MediaPlayer.events.PLAYBACK_ENDED, () => retryLater('ended', 'The stream has ended.', OFFLINE_RETRY_S));
    dash.initialize(video, mpd, true);
  }

  async function startNative() {
    stats.mode = 'native';
    // Native playback does not expose HTTP statuses, so ask first whether the channel is live.
    try {
      const res = await fetch(src, { cache: 'no-store' });
      if (res.status === 404 || res.status === 410) {
        retryLater('offline', `${channel} is not live right now.`, OFFLINE_RETRY_S);
        return;
      }
      if (accessMessage(res.status)) {
        retryLater('error', accessMessage(res.status), ERROR_RETRY_S);
        return;
      }
    } catch (err) {
      retryLater('error', `Could not reach the server: ${err.message}.`, ERROR_RETRY_S);
      return;
    }
    video.src = src;
    play();
  }

  video.addEventListener('error', () => {
    if (stats.mode !== 'native' || !video.getAttribute('src')) return;
    const err = video.error;
    const text = (err && err.message) || `media error ${err ? err.code : '?'}`;
    recordError({ type: 'nativeError', details: err ? `MEDIA_ERR ${err.code}` : '', fatal: true, code: null, message: text });
    retryLater('error', `Playback failed: ${text}.`, ERROR_RETRY_S);
  });
  video.addEventListener('loadedmetadata', () => {
    // Native HLS: a finite duration means the playlist has EXT-X-ENDLIST (not live).
    if (stats.mode === 'native' && Number.isFinite(video.duration) && !advanced) {
      retryLater('ended', 'The stream has ended.', OFFLINE_RETRY_S);
    }
  });
  video.addEventListener('ended', () => retryLater('ended', 'The stream has ended.', OFFLINE_RETRY_S));
  video.addEventListener('playing', () => { autoplayBlocked = false; });
  video.addEventListener('volumechange', updateButton);

  unmute.addEventListener('click', () => {
    video.muted = false;
    if (video.volume === 0) video.volume = 1;
    if (video.paused) play();
    updateButton();
  });

  function updateButton() {
    const active = ['playing', 'stalled', 'paused', 'loading'].includes(stats.state) && !!(hls || dash || rtc || video.getAttribute('src'));
    const label = video.paused ? 'Play' : video.muted ? 'Unmute' : '';
    unmute.hidden = !active || label === '';
    if (label && unmute.textContent !== label) unmute.textContent = label;
  }

  function bufferAhead() {
    const t = video.currentTime;
    const ranges = video.buffered;
    for (let i = 0; i < ranges.length; i += 1) {
      // A small tolerance: the playhead often sits a hair before the first range.
      if (ranges.start(i) - 0.1 <= t && t <= ranges.end(i)) return ranges.end(i) - t;
    }
    return 0;
  }

  function latency() {
    if (dash) {
      const l = dash.getCurrentLiveLatency();
      return Number.isFinite(l) && l > 0 ? l : null;
    }
    if (hls) {
      const l = hls.latency;
      return Number.isFinite(l) && l > 0 ? l : null;
    }
    if (typeof video.getStartDate === 'function') {
      const start = video.getStartDate().getTime();
      if (Number.isFinite(start) && start > 0) return (Date.now() - (start + video.currentTime * 1000)) / 1000;
    }
    return null;
  }

  function wallLatency() {
    // dash.js: the playhead on the MPD's wall clock (availabilityStartTime, periods),
    // which the origin anchors at the arrival of each period's first frame.
    const date = hls ? hls.playingDate : dash ? new Date(dash.timeAsUTC() * 1000) : null;
    const t = date instanceof Date ? date.getTime() : NaN;
    return Number.isFinite(t) && t > 0 ? (Date.now() - t) / 1000 : null;
  }

  function level() {
    if (hls && hls.levels && hls.currentLevel >= 0) {
      const l = hls.levels[hls.currentLevel];
      if (l) {
        const codecs = [l.videoCodec, l.audioCodec].filter(Boolean).join(',') || (l.attrs && l.attrs.CODECS) || null;
        return {
          index: hls.currentLevel,
          name: l.name || (l.attrs && l.attrs.NAME) || null,
          width: l.width || video.videoWidth || null,
          height: l.height || video.videoHeight || null,
          bitrate: l.bitrate || null,
          codecs,
        };
      }
    }
    if (video.videoHeight) {
      return { index: null, name: null, width: video.videoWidth, height: video.videoHeight, bitrate: null, codecs: null };
    }
    return null;
  }

  function fmtSeconds(s) {
    return s === null || !Number.isFinite(s) ? '–' : `${s.toFixed(2)} s`;
  }

  function fmtLevel(l) {
    if (!l) return '–';
    const parts = [];
    if (l.height) parts.push(`${l.height}p`);
    if (l.bitrate) parts.push(l.bitrate >= 1e6 ? `${(l.bitrate / 1e6).toFixed(2)} Mbit/s` : `${Math.round(l.bitrate / 1e3)} kbit/s`);
    if (l.codecs) parts.push(l.codecs.replace(/,/g, ', '));
    return parts.join(' · ') || '–';
  }

  const pageStart = performance.now();
  let lastTick = pageStart;

  function tick() {
    const now = performance.now();
    const dt = now - lastTick;
    lastTick = now;
    if (stats.state === 'playing') stats.playedMs += dt;
    if (stats.state === 'stalled') stats.rebufferMs += dt;
    if (stats.startupMs === null && stats.state === 'playing') stats.startupMs = now - pageStart;
    const t = video.currentTime;
    if (!video.paused && lastTime >= 0 && t !== lastTime) {
      advanced = true;
      lastAdvanceAt = now;
    }
    lastTime = t;

    // The retrying states belong to the error/ended handlers; the tick only moves
    // between loading, playing, stalled and paused.
    if (['loading', 'playing', 'stalled', 'paused'].includes(stats.state)) {
      if (video.paused && (advanced || autoplayBlocked)) {
        setState('paused', autoplayBlocked ? 'The browser blocked autoplay: press Play.' : '');
      } else if (advanced && now - lastAdvanceAt < STALL_MS) {
        setState('playing');
      } else if (advanced) {
        setState('stalled', 'Waiting for the stream…');
      } else {
        setState('loading', 'Loading the stream…');
      }
    }

    stats.currentTime = t;
    stats.latency = latency();
    stats.wallLatency = wallLatency();
    stats.buffer = bufferAhead();
    stats.level = level();
    const lat = fmtSeconds(stats.latency);
    const buf = fmtSeconds(stats.buffer);
    const lvl = fmtLevel(stats.level);
    if (out.latency.textContent !== lat) out.latency.textContent = lat;
    if (out.buffer.textContent !== buf) out.buffer.textContent = buf;
    if (out.level.textContent !== lvl) out.level.textContent = lvl;
    if (agent && out.p2p) {
      const p = agent.stats;
      const total = p.peerBytes + p.edgeBytes;
      const share = total ? Math.round((100 * p.peerBytes) / total) : 0;
      const text = `${p.peers} peer${p.peers === 1 ? '' : 's'} · ${share}% from peers`;
      out.p2pRow.hidden = false;
      if (out.p2p.textContent !== text) out.p2p.textContent = text;
    }
    updateButton();
  }

  setInterval(tick, TICK_MS);
  // Turning the screen switches between the ladder and the vertical rendition.
  if (portrait && portrait.addEventListener && viewParam === null && (!replay || clipMatch) && !rendition) {
    portrait.addEventListener('change', () => {
      teardown();
      start();
    });
  }
  start();
})();
