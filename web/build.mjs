// Builds Starling's web UI (viewer pages and the admin console) into $STARLING_WEB_OUT (default: web/dist).
//
// No bundler: the sources in src/ are plain HTML, CSS and browser JS. The build
//  1. copies each asset (our JS/CSS/SVG and hls.js's prebuilt hls.min.js) to
//     OUT/assets/NAME.HASH.EXT, where HASH is the first 10 hex digits of the SHA-256
//     of the file, so the server can cache them forever (`immutable`);
//  2. rewrites `{{asset:NAME}}` in the HTML pages to `/assets/NAME.HASH.EXT` and
//     writes the pages to OUT/ (they are served with `no-cache`);
//  3. writes OUT/manifest.json ({ "pages": [...], "assets": { "app.js": "app.0123456789.js" } }).
//
// Usage: `npm run build` or `STARLING_WEB_OUT=/some/dir node build.mjs`.
// crates/app/web/build.rs runs this and embeds the result in the starling binary.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const out = resolve(process.env.STARLING_WEB_OUT || join(here, 'dist'));

// hls.js ships a ready-made minified UMD build (it defines `window.Hls` and carries its
// transmuxing worker inline, so no extra worker file is needed).
const require = createRequire(import.meta.url);
const hlsDist = dirname(require.resolve('hls.js/package.json')) + '/dist';
// dash.js's prebuilt UMD player (`window.dashjs`), without DRM or offline modules; the
// watch page loads it only for `?player=dash`.
// (dashjs's package exports hide package.json, so its folder is found from its entry.)
const dashEntry = require.resolve('dashjs');
const dashDist = join(dashEntry.slice(0, dashEntry.lastIndexOf('/node_modules/dashjs/') + '/node_modules/dashjs/'.length), 'dist/modern/umd');

const assetSources = [
  join(src, 'style.css'),
  join(src, 'live.js'),
  join(src, 'watch.js'),
  join(src, 'webrtc.js'),
  join(src, 'p2p.js'),
  join(src, 'studio.js'),
  join(src, 'admin.css'),
  join(src, 'admin.js'),
  join(src, 'favicon.svg'),
  join(hlsDist, 'hls.min.js'),
  join(dashDist, 'dash.mediaplayer.min.js'),
];

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const assets = {};
for (const file of assetSources) {
  const bytes = readFileSync(file);
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 10);
  const name = basename(file);
  const ext = extname(name);
  const hashed = `${name.slice(0, -ext.length)}.${hash}${ext}`;
  writeFileSync(join(out, 'assets', hashed), bytes);
  assets[name] = hashed;
}

const pages = readdirSync(src).filter((f) => f.endsWith('.html')).sort();
for (const page of pages) {
  const html = readFileSync(join(src, page), 'utf8').replace(/\{\{asset:([^}]+)\}\}/g, (_, name) => {
    const hashed = assets[name];
    if (!hashed) throw new Error(`${page} refers to {{asset:${name}}}, which is not an asset`);
    return `/assets/${hashed}`;
  });
  writeFileSync(join(out, page), html);
}

writeFileSync(join(out, 'manifest.json'), JSON.stringify({ pages, assets }, null, 2) + '\n');
console.log(`starling-web: built ${pages.length} pages and ${Object.keys(assets).length} assets into ${out}`);
