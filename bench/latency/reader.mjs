// Glass-to-glass latency reader: plays several pages at once in headless Chromium and,
// every --interval ms (±33 ms, at random), draws each page's <video> frame onto a
// canvas, reads the wall clock that bench/latency/stamp.py drew into the picture, and
// records `now - stamp` (same machine, same clock: no skew). Prints one JSON line:
//   {"ok":true,"results":[{"name":"starling","samples":420,"undecodable":0,
//     "p50":1.234,"p90":…,"p99":…,"min":…,"max":…,"buffer_p50":…,"hlsjs_latency_p50":…,
//     "hlsjs_target_p50":…,"stalls":0,"stalls_before":0}, …]}
//
//   node bench/latency/reader.mjs --page NAME=URL [--page NAME=URL …]
//        [--warmup 15] [--seconds 45] [--interval 100] [--timeout 60]
//
// Every page is sampled the same way, whatever player it runs; the sampler is installed
// before the page's own scripts. Warm-up starts when every page has shown its first
// decodable frame (hls.js settles on its live-sync point meanwhile); samples taken during
// the warm-up are discarded. A frame whose code fails its markers or CRC is counted as
// undecodable and left out. Beside the latency, per page: the media buffered ahead of the
// playhead (`buffer_p50`: what the player holds back; latency minus buffer is capture to
// media in the browser), hls.js's own latency estimate and its target (`hls.latency`,
// `hls.targetLatency`, from the page's hls.js instance, caught when hls.min.js defines
// window.Hls) and the stalls (`waiting` events) in the measured window and before it.
//
// playwright-core is resolved from web/node_modules (npm ci in web/), Chromium is
// Debian's (/usr/bin/chromium) or $CHROMIUM.

import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // Two pages play at once: keep both foreground-fast.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  // WHEP pages (?realtime=1): the server's host candidate is on loopback.
  '--allow-loopback-in-peer-connection',
];

// Installed in every page before its scripts run. Layout of the code: stamp.py.
function sampler(intervalMs) {
  const BLOCK = 40;
  const COLS = 32;
  const ROWS = 2;
  const W = BLOCK * COLS;
  const H = BLOCK * ROWS;
  const state = { samples: [], undecodable: [], hlsjs: [], target: [], buffer: [], stalls: [], errors: [] };
  window.__g2g = state;
  // Keep a reference to the page's hls.js instance, whichever page made it: wrap the
  // constructor when hls.min.js defines window.Hls (statics are inherited).
  let HlsClass;
  Object.defineProperty(window, 'Hls', {
    configurable: true,
    get: () => HlsClass,
    set: (Hls) => {
      HlsClass = class extends Hls {
        constructor(config) {
          super(config);
          state.instance = this;
          this.on(Hls.Events.ERROR, (_e, d) => state.errors.push([Date.now(), `${d.details}${d.fatal ? ' (fatal)' : ''}`]));
          // Start-up trace (DIAG=1 prints it): what was loaded, where the playhead was
          // put, and what each SourceBuffer held when playback waited.
          this.on(Hls.Events.FRAG_BUFFERED, (_e, d) => {
            const f = d.part || d.frag;
            trace(`buffered ${d.frag.type} sn=${d.frag.sn}${d.part ? `.${d.part.index}` : ''} ${f.start.toFixed(3)}+${f.duration.toFixed(3)}`);
          });
          this.on(Hls.Events.LEVEL_UPDATED, (_e, d) => trace(`level edge=${d.details.edge.toFixed(3)} live=${d.details.live}`));
          this.on(Hls.Events.AUDIO_TRACK_LOADED, (_e, d) => trace(`audio playlist edge=${d.details.edge.toFixed(3)}`));
        }
      };
    },
  });
  state.trace = [];
  const t0 = Date.now();
  const sourceBuffers = [];
  function ranges(b) {
    const out = [];
    for (let i = 0; i < b.length; i += 1) out.push(`${b.start(i).toFixed(3)}-${b.end(i).toFixed(3)}`);
    return out.join(',') || '-';
  }
  function trace(what) {
    if (state.trace.length >= 400) return;
    const video = document.querySelector('video');
    const at = video ? video.currentTime.toFixed(3) : '?';
    state.trace.push(`${Date.now() - t0}ms t=${at} ${what}`);
  }
  const addSourceBuffer = MediaSource.prototype.addSourceBuffer;
  MediaSource.prototype.addSourceBuffer = function add(mime) {
    const b = addSourceBuffer.call(this, mime);
    sourceBuffers.push([mime.split(';')[0], b]);
    trace(`sourcebuffer ${mime}`);
    return b;
  };
  document.addEventListener('waiting', () => {
    state.stalls.push(Date.now());
    trace(`WAITING ${sourceBuffers.map(([m, b]) => { try { return `${m}:${ranges(b.buffered)}`; } catch (e) { return `${m}:gone`; } }).join(' ')}`);
  }, true);
  document.addEventListener('playing', () => trace('playing'), true);
  document.addEventListener('seeking', () => trace('seeking'), true);
  function crc8(bytes) {
    let crc = 0;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i += 1) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  }
  let canvas = null;
  let ctx = null;
  function tick() {
    const video = document.querySelector('video');
    if (!video || video.readyState < 2 || !video.videoWidth || video.paused) return;
    if (!canvas) {
      canvas = document.createElement('canvas');
      canvas.width = W;
      canvas.height = H;
      ctx = canvas.getContext('2d', { willReadFrequently: true });
    }
    const now = Date.now();
    // The code was drawn on a 1280-wide picture: scale if the video is another size.
    const k = video.videoWidth / 1280;
    ctx.drawImage(video, 0, 0, W * k, H * k, 0, 0, W, H);
    const px = ctx.getImageData(0, 0, W, H).data;
    const bits = [];
    for (let r = 0; r < ROWS; r += 1) {
      for (let c = 0; c < COLS; c += 1) {
        // Mean of the block's middle half: the edges are where compression blurs.
        let sum = 0;
        let n = 0;
        for (let y = r * BLOCK + BLOCK / 4; y < (r + 1) * BLOCK - BLOCK / 4; y += 2) {
          for (let x = c * BLOCK + BLOCK / 4; x < (c + 1) * BLOCK - BLOCK / 4; x += 2) {
            sum += px[(y * W + x) * 4 + 1];
            n += 1;
          }
        }
        bits.push(sum / n > 128 ? 1 : 0);
      }
    }
    const marks = bits.slice(0, 4).join('') + bits.slice(60).join('');
    let ms = 0;
    for (let i = 4; i < 52; i += 1) ms = ms * 2 + bits[i];
    let crc = 0;
    for (let i = 52; i < 60; i += 1) crc = crc * 2 + bits[i];
    const bytes = [];
    for (let i = 5; i >= 0; i -= 1) bytes.push(Math.floor(ms / 2 ** (8 * i)) % 256);
    if (marks !== '10100101' || crc8(bytes) !== crc || Math.abs(now - ms) > 600_000) {
      state.undecodable.push(now);
      return;
    }
    state.samples.push([now, now - ms]);
    // Media in the browser's buffer ahead of the playhead: what the player holds back.
    const t = video.currentTime;
    for (let i = 0; i < video.buffered.length; i += 1) {
      if (video.buffered.start(i) - 0.1 <= t && t <= video.buffered.end(i)) state.buffer.push([now, video.buffered.end(i) - t]);
    }
    const hls = state.instance;
    if (hls && Number.isFinite(hls.latency) && hls.latency > 0) state.hlsjs.push([now, hls.latency]);
    if (hls && Number.isFinite(hls.targetLatency)) state.target.push([now, hls.targetLatency]);
  }
  // A fixed 100 ms would be exactly 3 frames at 30 fps: every sample would catch its
  // frame at the same moment of the frame's time on screen. A random interval
  // (±33 ms around intervalMs) samples that moment uniformly instead.
  const next = () => setTimeout(() => {
    tick();
    next();
  }, intervalMs - 33 + Math.random() * 66);
  next();
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round3 = (x) => (x === null ? null : Number(x.toFixed(3)));

async function main() {
  const { values } = parseArgs({
    options: {
      page: { type: 'string', multiple: true, default: [] },
      warmup: { type: 'string', default: '15' },
      seconds: { type: 'string', default: '45' },
      interval: { type: 'string', default: '100' },
      timeout: { type: 'string', default: '60' },
    },
  });
  const pages = values.page.map((p) => {
    const i = p.indexOf('=');
    if (i < 1) throw new Error(`--page wants NAME=URL, not ${p}`);
    return { name: p.slice(0, i), url: p.slice(i + 1) };
  });
  if (pages.length === 0) throw new Error('at least one --page NAME=URL');
  const warmup = Number(values.warmup) * 1000;
  const seconds = Number(values.seconds) * 1000;
  const timeout = Number(values.timeout) * 1000;
  const interval = Number(values.interval);

  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, reason: 'watchdog: no result in time' }));
    process.exit(1);
  }, timeout + warmup + seconds + 60_000);
  watchdog.unref();

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ARGS,
    timeout: 30_000,
  });
  try {
    for (const p of pages) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      p.page = await context.newPage();
      p.errors = [];
      p.page.on('pageerror', (e) => p.errors.push(String(e && e.message ? e.message : e)));
      await p.page.addInitScript(sampler, interval);
      const res = await p.page.goto(p.url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
      if (!res || !res.ok()) throw new Error(`${p.name}: GET ${p.url} answered ${res ? res.status() : 'nothing'}`);
    }
    const deadline = Date.now() + timeout;
    for (const p of pages) {
      while ((await p.page.evaluate(() => window.__g2g.samples.length)) === 0) {
        if (Date.now() > deadline) throw new Error(`${p.name}: no decodable frame within ${timeout / 1000} s (errors: ${p.errors.join('; ') || 'none'})`);
        await sleep(250);
      }
    }
    await sleep(warmup);
    const from = Date.now();
    await sleep(seconds);
    const to = Date.now();
    const results = [];
    for (const p of pages) {
      const s = await p.page.evaluate(() => {
        const { instance, ...rest } = window.__g2g;
        return rest;
      });
      const within = (xs) => xs.filter(([at]) => at >= from && at < to).map(([, v]) => v).sort((a, b) => a - b);
      const lat = within(s.samples).map((d) => d / 1000);
      results.push({
        name: p.name,
        samples: lat.length,
        undecodable: s.undecodable.filter((at) => at >= from && at < to).length,
        p50: round3(quantile(lat, 0.5)),
        p90: round3(quantile(lat, 0.9)),
        p99: round3(quantile(lat, 0.99)),
        min: round3(lat[0] ?? null),
        max: round3(lat.at(-1) ?? null),
        buffer_p50: round3(quantile(within(s.buffer), 0.5)),
        hlsjs_latency_p50: round3(quantile(within(s.hlsjs), 0.5)),
        hlsjs_target_p50: round3(quantile(within(s.target), 0.5)),
        stalls: s.stalls.filter((at) => at >= from && at < to).length,
        // Before the window (start-up and warm-up; the first wait for data counts too):
        // hls.js adds 1 s to its target for every stall it sees.
        stalls_before: s.stalls.filter((at) => at < from).length,
        // hls.js's error events (most are not fatal: stalls, gaps it skips), whole run.
        hlsjs_errors: Object.entries(
          s.errors.reduce((n, [at, d]) => ({ ...n, [`${d}${at < from ? ' before' : ''}`]: (n[`${d}${at < from ? ' before' : ''}`] || 0) + 1 }), {}),
        ).map(([d, n]) => `${d} ×${n}`),
        page_errors: p.errors.slice(0, 5),
        ...(process.env.DIAG ? { trace: s.trace } : {}),
      });
    }
    console.log(JSON.stringify({ ok: true, warmup_s: warmup / 1000, seconds: seconds / 1000, results }));
  } finally {
    await browser.close().catch(() => {});
  }
}

try {
  await main();
} catch (err) {
  console.log(JSON.stringify({ ok: false, reason: String(err && err.message ? err.message : err) }));
  process.exitCode = 1;
}
