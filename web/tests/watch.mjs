// Browser test harness: plays a Starling page in headless Chromium and reports, as one
// JSON line on stdout, whether it played and with what latency. Exit 0 when ok, 1 when not.
//
//   node web/tests/watch.mjs URL [--seconds 5] [--max-latency 3] [--timeout 60] [--screenshot FILE]
//     Opens a player page (/watch/NAME), waits for window.starlingStats.playing, then
//     until currentTime has advanced by --seconds. Latency is sampled 4×/s over the last
//     min(3, --seconds) seconds of that; the run fails when the median exceeds
//     --max-latency, or when no latency was reported at all. `latency` is hls.js's
//     (behind the playlist's live edge); `wall_latency_median` is now minus the
//     EXT-X-PROGRAM-DATE-TIME on screen (includes packaging delay; null without dates).
//     → {"ok":true,"advanced":5.2,"wall_seconds":5.3,"latency_median":1.4,"latency_max":1.9,
//        "latency_samples":12,"wall_latency_median":1.9,"level":{...},"mode":"hls.js","state":"playing","errors":[],"page_errors":[]}
//
//   node web/tests/watch.mjs URL --portrait …
//     As any of these, in a window held upright (390×844) rather than 1280×800; the
//     result's `view` says which the page chose (`vertical`, `landscape`).
//
//   node web/tests/watch.mjs URL --vod [--seconds 5] [--timeout 60]
//     A recording (`/watch/NAME?replay=1`): as above, without the latency checks.
//
//   node web/tests/watch.mjs URL --expect-text TEXT [--timeout 20] [--screenshot FILE]
//     Checks that the page shows TEXT within --timeout seconds (default 20), e.g. that `/`
//     lists a live channel. → {"ok":true,"text":"demo"}
//
//   node web/tests/watch.mjs URL --expect-image SELECTOR [--timeout 20]
//     Checks that an <img> matching SELECTOR is shown, loaded, with a picture in it
//     (e.g. a channel's thumbnail on `/`). → {"ok":true,"image":{"src":…,"width":320,"height":180}}
//
//   node web/tests/watch.mjs URL --abr KBPS [--timeout 120]
//     Adaptive bitrate: once playing, throttles the page's network to KBPS kbit/s
//     (DevTools network emulation) until the player has switched to a rendition whose
//     bitrate is below KBPS, then lifts the throttle until it has switched back up.
//     → {"ok":true,"abr":{"start":{...},"down":{...},"up":{...},"down_after_s":6.1,"up_after_s":9.8},…}
//
// Chromium is Debian's (`apt-get install chromium`), or $CHROMIUM. playwright-core's
// launch() gives every run a fresh temporary profile and deletes it afterwards.

import { chromium } from 'playwright-core';
import { parseArgs } from 'node:util';

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '5' },
      'max-latency': { type: 'string', default: '3' },
      timeout: { type: 'string' },
      screenshot: { type: 'string' },
      'expect-text': { type: 'string' },
      'expect-image': { type: 'string' },
      abr: { type: 'string' },
      vod: { type: 'boolean' },
      portrait: { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new Error('usage: watch.mjs URL [--seconds 5] [--max-latency 3] [--timeout S] [--screenshot FILE] [--expect-text TEXT]');
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, not ${JSON.stringify(v)}`);
    return n;
  };
  const expectText = values['expect-text'];
  const expectImage = values['expect-image'];
  return {
    url: positionals[0],
    seconds: num('seconds', values.seconds),
    maxLatency: num('max-latency', values['max-latency']),
    timeout: num('timeout', values.timeout ?? (expectText !== undefined || expectImage !== undefined ? '20' : values.abr !== undefined ? '120' : '60')),
    screenshot: values.screenshot,
    expectText,
    expectImage,
    abr: values.abr === undefined ? undefined : num('abr', values.abr),
    // A phone held upright (390×844), for the vertical rendition.
    portrait: values.portrait === true,
    // A recording (`/watch/NAME?replay=1`): it has no live edge, so no latency to check.
    vod: values.vod === true,
  };
}

const round = (x, digits = 3) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

async function readStats(page) {
  return page.evaluate(() => {
    const s = window.starlingStats;
    return s ? JSON.parse(JSON.stringify(s)) : null;
  });
}

async function watch(page, opts, result) {
  const deadline = Date.now() + opts.timeout * 1000;
  let stats = null;
  // 1. Until playing.
  while (true) {
    stats = await readStats(page);
    if (stats && stats.playing) break;
    if (Date.now() > deadline) {
      const where = stats ? `${stats.state}${stats.message ? `: ${stats.message}` : ''}` : 'window.starlingStats is missing';
      return { ...result, ...summary(stats), reason: `playback did not start within ${opts.timeout} s (state ${where})` };
    }
    await sleep(250);
  }
  // 2. Until currentTime has advanced by --seconds, sampling as we go.
  const t0 = stats.currentTime;
  const wall0 = Date.now();
  const samples = [];
  let advanced = 0;
  while (true) {
    stats = await readStats(page);
    advanced = stats.currentTime - t0;
    samples.push({ at: Date.now(), latency: stats.latency, wall: stats.wallLatency });
    if (advanced >= opts.seconds) break;
    if (Date.now() > deadline) {
      return {
        ...result,
        ...summary(stats),
        advanced: round(advanced),
        reason: `playback advanced only ${advanced.toFixed(2)} s of ${opts.seconds} s within ${opts.timeout} s (state ${stats.state}${stats.message ? `: ${stats.message}` : ''})`,
      };
    }
    await sleep(250);
  }
  const end = Date.now();
  const windowMs = Math.min(3, opts.seconds) * 1000;
  const recent = samples.filter((s) => s.at >= end - windowMs);
  const lat = recent.filter((s) => Number.isFinite(s.latency)).map((s) => s.latency);
  const wall = recent.filter((s) => Number.isFinite(s.wall)).map((s) => s.wall);
  const out = {
    ...result,
    ...summary(stats),
    advanced: round(advanced),
    wall_seconds: round((end - wall0) / 1000),
    latency_median: round(median(lat)),
    latency_max: round(lat.length ? Math.max(...lat) : null),
    latency_samples: lat.length,
    // From EXT-X-PROGRAM-DATE-TIME (server clock → now); null when the playlist has no dates.
    wall_latency_median: round(median(wall)),
  };
  if (opts.vod) return { ...out, ok: true };
  if (lat.length === 0) return { ...out, reason: 'the page reported no latency while playing' };
  if (out.latency_median > opts.maxLatency) {
    return { ...out, reason: `median latency ${out.latency_median} s exceeds --max-latency ${opts.maxLatency} s` };
  }
  return { ...out, ok: true };
}

function summary(stats) {
  if (!stats) return { level: null, mode: null, view: null, state: null, errors: [] };
  return { level: stats.level, mode: stats.mode, view: stats.view || null, state: stats.state, errors: stats.errors || [] };
}

async function expectText(page, opts, result) {
  try {
    await page.waitForFunction((text) => document.body && document.body.innerText.includes(text), opts.expectText, {
      timeout: opts.timeout * 1000,
      polling: 250,
    });
    return { ...result, ok: true, text: opts.expectText };
  } catch {
    const shown = await page.evaluate(() => (document.body ? document.body.innerText : '')).catch(() => '');
    return {
      ...result,
      text: opts.expectText,
      shown: shown.slice(0, 500),
      reason: `the page did not show ${JSON.stringify(opts.expectText)} within ${opts.timeout} s`,
    };
  }
}

async function expectImage(page, opts, result) {
  const find = (selector) => {
    const img = [...document.querySelectorAll(selector)].find((i) => i instanceof HTMLImageElement
      && !i.hidden && i.complete && i.naturalWidth > 0 && i.naturalHeight > 0);
    return img ? { src: img.getAttribute('src'), width: img.naturalWidth, height: img.naturalHeight } : null;
  };
  try {
    const handle = await page.waitForFunction(find, opts.expectImage, { timeout: opts.timeout * 1000, polling: 250 });
    return { ...result, ok: true, image: await handle.jsonValue() };
  } catch {
    return { ...result, reason: `no loaded image matching ${JSON.stringify(opts.expectImage)} within ${opts.timeout} s` };
  }
}

// Plays, throttles the network until the player switches below the throttle, then lifts
// it until the player switches back up (see the usage above).
async function abr(page, context, opts, result) {
  const deadline = Date.now() + opts.timeout * 1000;
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const throttle = (kbps) => cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: kbps > 0 ? 20 : 0,
    downloadThroughput: kbps > 0 ? (kbps * 1000) / 8 : -1,
    uploadThroughput: -1,
  });
  const until = async (what, pred) => {
    while (Date.now() < deadline) {
      const stats = await readStats(page);
      if (stats && pred(stats)) return stats;
      await sleep(250);
    }
    const stats = await readStats(page);
    return { failed: `${what} within ${opts.timeout} s (state ${stats && stats.state}, level ${JSON.stringify(stats && stats.level)})` };
  };
  const started = await until('playback did not start', (s) => s.playing && s.level && s.level.bitrate);
  if (started.failed) return { ...result, reason: started.failed };
  // A few seconds at the start level, so that the estimate has settled.
  await sleep(3000);
  const start = (await readStats(page)).level;
  const t0 = Date.now();
  await throttle(opts.abr);
  const down = await until(`no switch below ${opts.abr} kbit/s`, (s) => s.level && s.level.bitrate && s.level.bitrate < opts.abr * 1000);
  if (down.failed) return { ...result, abr: { start }, reason: down.failed };
  const t1 = Date.now();
  await throttle(0);
  const up = await until('no switch back up', (s) => s.level && s.level.bitrate > down.level.bitrate);
  if (up.failed) return { ...result, abr: { start, down: down.level }, reason: up.failed };
  const t2 = Date.now();
  const end = await readStats(page);
  return {
    ...result,
    ...summary(end),
    ok: end.playing === true,
    abr: { start, down: down.level, up: up.level, down_after_s: round((t1 - t0) / 1000), up_after_s: round((t2 - t1) / 1000) },
    reason: end.playing ? undefined : `not playing at the end (state ${end.state})`,
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
  // Last resort if Chromium hangs: report and leave rather than blocking the caller.
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, url: opts.url, reason: `harness watchdog: no result after ${opts.timeout + 60} s` }));
    process.exit(1);
  }, (opts.timeout + 60) * 1000);
  watchdog.unref();

  const pageErrors = [];
  let result = { ok: false, url: opts.url, page_errors: pageErrors };
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const viewport = opts.portrait ? { width: 390, height: 844 } : { width: 1280, height: 800 };
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err && err.message ? err.message : err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
    });
    const res = await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
    if (!res || !res.ok()) {
      result.reason = `GET ${opts.url} answered ${res ? res.status() : 'nothing'}`;
    } else if (opts.expectText !== undefined) {
      result = await expectText(page, opts, result);
    } else if (opts.expectImage !== undefined) {
      result = await expectImage(page, opts, result);
    } else if (opts.abr !== undefined) {
      result = await abr(page, context, opts, result);
    } else {
      result = await watch(page, opts, result);
    }
    if (opts.screenshot) {
      try {
        await page.screenshot({ path: opts.screenshot });
        result.screenshot = opts.screenshot;
      } catch (err) {
        console.error(`watch.mjs: screenshot failed: ${err.message}`);
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
