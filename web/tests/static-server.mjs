// A stand-in for the Starling server, for trying the web UI and the browser harness
// without it. It serves the built site with the same routes as crates/app/web
// (`/`, `/watch/NAME`, `/assets/FILE`), HLS files from a directory under `/live/`, and a
// fake `GET /api/v1/live` listing every channel whose index.m3u8 changed in the last 10 s.
//
//   node web/tests/static-server.mjs --live /tmp/x/live [--site web/dist] [--port 8089]
//
// Make a stream for it with ffmpeg (plain HLS with 1 s fMP4 segments, not LL-HLS):
//   mkdir -p /tmp/x/live/demo && ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=30 \
//     -f lavfi -i sine -c:v libx264 -g 30 -c:a aac -f hls -hls_segment_type fmp4 \
//     -hls_time 1 -hls_list_size 6 -hls_flags delete_segments /tmp/x/live/demo/index.m3u8

import { createServer } from 'node:http';
import { readFile, stat, readdir } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    live: { type: 'string', default: '/tmp/x/live' },
    site: { type: 'string', default: join(here, '..', 'dist') },
    port: { type: 'string', default: '8089' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const liveRoot = resolve(args.live);
const siteRoot = resolve(args.site);
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const startedAt = new Date().toISOString();

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.mp4': 'video/mp4',
  '.m4s': 'video/iso.segment',
};

// Joins untrusted path segments under root, refusing anything that would escape it.
function inside(root, rel) {
  const full = resolve(root, rel);
  return full === root || full.startsWith(root + sep) ? full : null;
}

async function sendFile(res, file, cacheControl) {
  try {
    const body = await readFile(file);
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] || 'application/octet-stream',
      'Cache-Control': cacheControl,
      'Content-Length': body.length,
    });
    res.end(body);
  } catch {
    notFound(res);
  }
}

function notFound(res) {
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
  res.end('not found\n');
}

async function liveChannels() {
  const channels = [];
  let names = [];
  try {
    names = await readdir(liveRoot);
  } catch {
    return channels;
  }
  for (const name of names.sort()) {
    if (!NAME_RE.test(name)) continue;
    try {
      // Live: a playlist of the channel (multivariant or a rendition's) changed lately.
      const playlists = [join(liveRoot, name, 'index.m3u8')];
      for (const sub of await readdir(join(liveRoot, name))) playlists.push(join(liveRoot, name, sub, 'index.m3u8'));
      const mtimes = await Promise.all(playlists.map((p) => stat(p).then((st) => st.mtimeMs, () => 0)));
      if (Date.now() - Math.max(...mtimes) > 10_000) continue;
      channels.push({
        name,
        since: startedAt,
        video: { codec: 'avc1.64001e', width: 640, height: 360, frame_rate: 30.0 },
        audio: { codec: 'mp4a.40.2', sample_rate: 48000, channels: 1 },
        viewers: 0,
      });
    } catch {
      // not live
    }
  }
  return channels;
}

const server = createServer(async (req, res) => {
  let path;
  try {
    path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  } catch {
    return notFound(res);
  }
  if (path === '/') return sendFile(res, join(siteRoot, 'index.html'), 'no-cache');
  let m = path.match(/^\/watch\/([^/]*)$/);
  if (m) return NAME_RE.test(m[1]) ? sendFile(res, join(siteRoot, 'watch.html'), 'no-cache') : notFound(res);
  m = path.match(/^\/assets\/([^/]+)$/);
  if (m) {
    const file = inside(join(siteRoot, 'assets'), m[1]);
    return file ? sendFile(res, file, 'public, max-age=31536000, immutable') : notFound(res);
  }
  if (path === '/api/v1/live') {
    const body = JSON.stringify({ channels: await liveChannels() });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' });
    return res.end(body);
  }
  m = path.match(/^\/live\/(.+)$/);
  if (m) {
    const file = inside(liveRoot, m[1]);
    if (!file) return notFound(res);
    return sendFile(res, file, file.endsWith('.m3u8') ? 'no-cache' : 'public, max-age=60');
  }
  notFound(res);
});

server.listen(Number(args.port), args.host, () => {
  console.log(`static-server: http://${args.host}:${args.port}/ (site ${siteRoot}, live ${liveRoot})`);
});
