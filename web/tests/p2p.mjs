// P2P browser harness: N viewers of one channel (`/watch/NAME?p2p=1`), each in its own
// browser context of one headless Chromium, play for --seconds; reports, as one JSON
// line on stdout, what each got from peers and from the edge, what it uploaded, its
// stalls, and the faults it saw. Exit 0 when ok, 1 when not.
//
//   node web/tests/p2p.mjs URL [--viewers 3] [--seconds 30] [--timeout 90]
//                              [--corrupt I] [--vanish I]
//
// Fault injection, from outside the page (an init script wraps the browser's own
// RTCDataChannel.send; the page's code is the production code):
//   --corrupt I  viewer I flips a byte in every DATA frame it sends (a lying peer);
//   --vanish I   viewer I disappears mid-transfer: after the second DATA frame it ever
//                sends, it closes every peer connection and sends nothing more.
//
// ok when every honest viewer played --seconds with at most --max-stall-ms of stalls
// after its start (default 1000), no piece that failed verification reached a player
// (hls.js reported no media error), and bytes flowed between viewers.
// → {"ok":true,"viewers":[{"index":0,"peer_bytes":…,"edge_bytes":…,"uploaded_bytes":…,
//    "pieces_from_peers":…,"pieces_from_edge":…,"bad_pieces":0,"boosted":0,"peers":2,
//    "rebuffer_ms":0,"played_ms":…,"startup_ms":…,"latency":8.1,"wall_latency":9.0,
//    "notes":[],"errors":[]},…],
//    "peer_bytes":…,"edge_bytes":…,"offload":0.6}

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
  // Host candidates as addresses, not mDNS names (no multicast resolver in a container),
  // and loopback allowed: the viewers are on one machine.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
  // Background tabs keep their timers at full rate (every viewer is a background tab).
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      viewers: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '30' },
      timeout: { type: 'string', default: '90' },
      'max-stall-ms': { type: 'string', default: '1000' },
      corrupt: { type: 'string' },
      vanish: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error('usage: p2p.mjs URL [--viewers 3] [--seconds 30] [--corrupt I] [--vanish I]');
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, not ${JSON.stringify(v)}`);
    return n;
  };
  return {
    url: positionals[0],
    viewers: num('viewers', values.viewers),
    seconds: num('seconds', values.seconds),
    timeout: num('timeout', values.timeout),
    maxStallMs: num('max-stall-ms', values['max-stall-ms']),
    corrupt: values.corrupt === undefined ? -1 : num('corrupt', values.corrupt),
    vanish: values.vanish === undefined ? -1 : num('vanish', values.vanish),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs in a lying viewer's page before its scripts.
function corruptSends() {
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    if (data instanceof ArrayBuffer && data.byteLength > 64 && new Uint8Array(data)[0] === 4) {
      const copy = data.slice(0);
      new Uint8Array(copy)[40] ^= 0xff;
      window.__corrupted = (window.__corrupted || 0) + 1;
      return send.call(this, copy);
    }
    return send.call(this, data);
  };
}

// Runs in a vanishing viewer's page before its scripts.
function vanishMidTransfer() {
  const Pc = window.RTCPeerConnection;
  const pcs = [];
  window.RTCPeerConnection = class extends Pc {
    constructor(...args) {
      super(...args);
      pcs.push(this);
    }
  };
  const send = RTCDataChannel.prototype.send;
  let data = 0;
  RTCDataChannel.prototype.send = function (msg) {
    if (window.__vanished) return undefined;
    if (msg instanceof ArrayBuffer && new Uint8Array(msg)[0] === 4) {
      data += 1;
      if (data === 2) {
        window.__vanished = Date.now();
        const r = send.call(this, msg);
        for (const pc of pcs) pc.close();
        return r;
      }
    }
    return send.call(this, msg);
  };
}

async function readStats(page) {
  return page.evaluate(() => {
    const s = window.starlingStats;
    const out = s ? JSON.parse(JSON.stringify(s)) : null;
    if (out) {
      out.corrupted = window.__corrupted || 0;
      out.vanished = window.__vanished || 0;
    }
    return out;
  });
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
    console.log(JSON.stringify({ ok: false, url: opts.url, reason: `harness watchdog: no result after ${opts.timeout + 60} s` }));
    process.exit(1);
  }, (opts.timeout + 60) * 1000);
  watchdog.unref();

  const result = { ok: false, url: opts.url, viewers: [] };
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const pages = [];
    for (let i = 0; i < opts.viewers; i += 1) {
      const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
      if (i === opts.corrupt) await context.addInitScript(corruptSends);
      if (i === opts.vanish) await context.addInitScript(vanishMidTransfer);
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (err) => errors.push(String(err && err.message ? err.message : err)));
      page.on('response', (r) => {
        if (r.status() >= 400) errors.push({ http: r.status(), url: r.url() });
      });
      const res = await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
      if (!res || !res.ok()) throw new Error(`GET ${opts.url} answered ${res ? res.status() : 'nothing'}`);
      pages.push({ page, errors, index: i });
      // Viewers arrive one after another, as they do.
      await sleep(1500);
    }
    const deadline = Date.now() + opts.timeout * 1000;
    // Until everyone plays, then --seconds more.
    for (const v of pages) {
      while (true) {
        const s = await readStats(v.page);
        if (s && s.playing) break;
        if (Date.now() > deadline) throw new Error(`viewer ${v.index} did not start playing (state ${s && s.state}: ${s && s.message})`);
        await sleep(250);
      }
    }
    const starts = await Promise.all(pages.map((v) => readStats(v.page)));
    await sleep(opts.seconds * 1000);
    let peerBytes = 0;
    let edgeBytes = 0;
    const reasons = [];
    for (const v of pages) {
      const s = await readStats(v.page);
      const s0 = starts[v.index];
      const p = s.p2p || {};
      const honest = v.index !== opts.corrupt && v.index !== opts.vanish;
      const row = {
        index: v.index,
        role: v.index === opts.corrupt ? 'corrupt' : v.index === opts.vanish ? 'vanish' : 'honest',
        state: s.state,
        mode: s.mode,
        // hls.js's, behind the playlist's live edge (the P2P mode's extra latency).
        latency: s.latency === null ? null : Number(s.latency.toFixed(2)),
        wall_latency: s.wallLatency === null ? null : Number(s.wallLatency.toFixed(2)),
        advanced: Number((s.currentTime - s0.currentTime).toFixed(2)),
        peer_bytes: p.peerBytes || 0,
        edge_bytes: p.edgeBytes || 0,
        uploaded_bytes: p.uploadedBytes || 0,
        received_raw_bytes: p.peerBytesRaw || 0,
        pieces_from_peers: p.piecesFromPeers || 0,
        pieces_from_edge: p.piecesFromEdge || 0,
        bad_pieces: p.badPieces || 0,
        boosted: p.boosted || 0,
        peers: p.peers || 0,
        rebuffer_ms: Math.round(s.rebufferMs - s0.rebufferMs),
        played_ms: Math.round(s.playedMs),
        startup_ms: s.startupMs === null ? null : Math.round(s.startupMs),
        corrupted_sent: s.corrupted,
        vanished: !!s.vanished,
        notes: p.notes || [],
        errors: (s.errors || []).concat(v.errors),
      };
      result.viewers.push(row);
      peerBytes += row.peer_bytes;
      edgeBytes += row.edge_bytes;
      if (!honest) continue;
      if (row.advanced < opts.seconds * 0.8) reasons.push(`viewer ${v.index} advanced only ${row.advanced} s of ${opts.seconds}`);
      if (row.rebuffer_ms > opts.maxStallMs) reasons.push(`viewer ${v.index} stalled ${row.rebuffer_ms} ms`);
      const media = row.errors.filter((e) => e.type === 'mediaError' || typeof e === 'string');
      if (media.length) reasons.push(`viewer ${v.index}: ${JSON.stringify(media.slice(0, 3))}`);
    }
    result.peer_bytes = peerBytes;
    result.edge_bytes = edgeBytes;
    result.offload = peerBytes + edgeBytes ? Number((peerBytes / (peerBytes + edgeBytes)).toFixed(3)) : 0;
    if (peerBytes === 0) reasons.push('no bytes flowed between viewers');
    result.ok = reasons.length === 0;
    if (reasons.length) result.reason = reasons.join('; ');
  } catch (err) {
    result.reason = `${err.name || 'Error'}: ${err.message.split('\n')[0]}`;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  console.log(JSON.stringify(result));
  return result.ok ? 0 : 1;
}

process.exitCode = await main();
