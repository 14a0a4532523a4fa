// Browser test harness for real time (WHIP and WHEP) in headless Chromium with fake
// media devices (Chromium's own test pattern and beep). Reports one JSON line on stdout;
// exit 0 when ok, 1 when not.
//
//   node web/tests/realtime.mjs BASE_URL --channel NAME [--key KEY] [--resolution 640x360]
//        [--expect-size WxH] [--seconds 3] [--timeout 60]
//     With --key: the studio page (/studio) goes live on NAME over WHIP with the fake
//     camera and microphone at --resolution. Then a second page plays
//     /watch/NAME?realtime=1 over WHEP until its video has advanced --seconds, and its
//     picture must be --expect-size (default: --resolution when publishing).
//     → {"ok":true,"studio":{"state":"live","ms_to_live":850,…},
//        "viewer":{"mode":"whep","width":640,"height":360,"ms_to_playing":700,"advanced":3.1,…}}
//     --players hls.js,dash.js: then, with the studio still live, the same channel in
//     the watch page with hls.js (LL-HLS, `?realtime=0`) and with dash.js
//     (`?player=dash`): each must play --seconds with the same picture size
//     → "players":{"hls.js":{…},"dash.js":{…}}
//     --watch-query Q: the viewer's query instead of `realtime=1` (`''`: the page
//     decides, from the channel's latency mode).
//     --sign-in EMAIL:PASSWORD instead of --key: logs in first (POST /api/v1/login);
//     the studio then picks NAME among the account's channels and mints its own key.
//
// Chromium is Debian's (`apt-get install chromium`), or $CHROMIUM.

import { chromium } from 'playwright-core';
import { parseArgs } from 'node:util';

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // The fake camera (a moving test pattern) and microphone, granted without a prompt.
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // The server's host candidate is on loopback in tests; let WebRTC use it.
  '--allow-loopback-in-peer-connection',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      channel: { type: 'string' },
      key: { type: 'string' },
      resolution: { type: 'string', default: '640x360' },
      'expect-size': { type: 'string' },
      seconds: { type: 'string', default: '3' },
      timeout: { type: 'string', default: '60' },
      players: { type: 'string', default: '' },
      'watch-query': { type: 'string', default: 'realtime=1' },
      'sign-in': { type: 'string' },
    },
  });
  if (positionals.length !== 1 || !values.channel) {
    throw new Error('usage: realtime.mjs BASE_URL --channel NAME [--key KEY] [--resolution WxH] [--expect-size WxH] [--seconds 3] [--timeout 60]');
  }
  const size = (name, v) => {
    const m = /^(\d+)x(\d+)$/.exec(v || '');
    if (!m) throw new Error(`--${name} must be WIDTHxHEIGHT, not ${JSON.stringify(v)}`);
    return { width: Number(m[1]), height: Number(m[2]) };
  };
  return {
    base: positionals[0].replace(/\/$/, ''),
    channel: values.channel,
    key: values.key,
    resolution: values.resolution,
    expect: values['expect-size'] ? size('expect-size', values['expect-size']) : values.key || values['sign-in'] ? size('resolution', values.resolution) : null,
    seconds: Number(values.seconds),
    timeout: Number(values.timeout),
    players: values.players ? values.players.split(',') : [],
    watchQuery: values['watch-query'],
    signIn: values['sign-in'] || null,
  };
}

async function until(page, what, read, ok, deadline) {
  let last = null;
  while (Date.now() < deadline) {
    last = await page.evaluate(read).catch(() => null);
    if (last && ok(last)) return last;
    await sleep(200);
  }
  throw new Error(`${what} within the timeout (last: ${JSON.stringify(last)})`);
}

async function studio(context, opts, deadline, errors) {
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`studio: ${err.message}`));
  const t0 = Date.now();
  const frag = new URLSearchParams({ channel: opts.channel, resolution: opts.resolution, autostart: '1' });
  if (opts.key) frag.set('key', opts.key);
  await page.goto(`${opts.base}/studio#${frag}`, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  const s = await until(
    page,
    'the studio went live',
    () => JSON.parse(JSON.stringify(window.starlingStudio || null)),
    (s) => s.state === 'live' || s.state === 'error',
    deadline,
  );
  if (s.state !== 'live') throw new Error(`the studio did not go live: ${s.message}`);
  return { page, summary: { state: s.state, signed_in: !!s.signedIn, ms_to_live: Date.now() - t0 } };
}

async function viewer(context, opts, deadline, errors, query = 'realtime=1') {
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`viewer: ${err.message}`));
  const t0 = Date.now();
  await page.goto(`${opts.base}/watch/${opts.channel}?${query}`, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  const read = () => {
    const s = window.starlingStats;
    const v = document.getElementById('video');
    return s ? { ...JSON.parse(JSON.stringify(s)), width: v.videoWidth, height: v.videoHeight } : null;
  };
  const first = await until(page, 'WHEP playback started', read, (s) => s.playing && s.width > 0, deadline);
  const msToPlaying = Date.now() - t0;
  const last = await until(
    page,
    `the video advanced ${opts.seconds} s`,
    read,
    (s) => s.currentTime - first.currentTime >= opts.seconds,
    deadline,
  );
  // Sound too: the audio packets the page's WebRTC connection received (WHEP only).
  const audioPackets = await page.evaluate(async () => {
    const pc = window.starlingRtcPc;
    if (!pc) return null;
    let n = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') n += s.packetsReceived || 0;
    });
    return n;
  });
  await page.close();
  return {
    audio_packets: audioPackets,
    mode: last.mode,
    fallback: last.fallback,
    state: last.state,
    width: last.width,
    height: last.height,
    ms_to_playing: msToPlaying,
    advanced: Number((last.currentTime - first.currentTime).toFixed(2)),
    errors: last.errors,
  };
}

async function main() {
  let opts;
  try {
    opts = parse();
  } catch (err) {
    console.log(JSON.stringify({ ok: false, reason: err.message }));
    return 1;
  }
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, reason: `harness watchdog: no result after ${opts.timeout + 60} s` }));
    process.exit(1);
  }, (opts.timeout + 60) * 1000);
  watchdog.unref();

  const errors = [];
  const result = { ok: false, page_errors: errors };
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const deadline = Date.now() + opts.timeout * 1000;
    if (opts.signIn) {
      // The session cookie lands in the context's cookie jar, which its pages share.
      const at = opts.signIn.indexOf(':');
      const res = await context.request.post(`${opts.base}/api/v1/login`, {
        data: { email: opts.signIn.slice(0, at), password: opts.signIn.slice(at + 1) },
      });
      if (!res.ok()) throw new Error(`login: HTTP ${res.status()}`);
    }
    if (opts.key || opts.signIn) result.studio = (await studio(context, opts, deadline, errors)).summary;
    result.viewer = await viewer(context, opts, deadline, errors, opts.watchQuery);
    const v = result.viewer;
    if (v.mode !== 'whep') {
      result.reason = `the viewer played over ${v.mode}, not WHEP (fallback: ${v.fallback})`;
    } else if (opts.expect && (v.width !== opts.expect.width || v.height !== opts.expect.height)) {
      result.reason = `the viewer's picture is ${v.width}x${v.height}, not ${opts.expect.width}x${opts.expect.height}`;
    } else {
      result.ok = true;
    }
    const queries = { 'hls.js': 'realtime=0', 'dash.js': 'player=dash' };
    for (const player of opts.players) {
      if (!(player in queries)) throw new Error(`--players: unknown player ${player}`);
      result.players = result.players || {};
      const p = await viewer(context, opts, Date.now() + opts.timeout * 1000, errors, queries[player]);
      result.players[player] = p;
      if (result.ok && p.mode !== player) {
        result.ok = false;
        result.reason = `the ${player} page played with ${p.mode}`;
      } else if (result.ok && opts.expect && (p.width !== opts.expect.width || p.height !== opts.expect.height)) {
        result.ok = false;
        result.reason = `${player}'s picture is ${p.width}x${p.height}, not ${opts.expect.width}x${opts.expect.height}`;
      }
    }
  } catch (err) {
    result.reason = `${err.name || 'Error'}: ${err.message.split('\n')[0]}`;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  console.log(JSON.stringify(result));
  return result.ok ? 0 : 1;
}

process.exitCode = await main();
