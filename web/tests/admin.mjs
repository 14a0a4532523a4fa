// Browser test of the admin console (`/admin`) against a running Starling, in headless
// Chromium through playwright-core. Prints one JSON line on stdout; exit 0 when ok.
//
//   STARLING_ADMIN_PASSWORD=... node web/tests/admin.mjs BASE_URL --email E --rtmp rtmp://HOST:PORT/live
//       [--channel NAME] [--publish-seconds 20] [--timeout 60] [--screenshot FILE]
//
// What it does, as a person would, through labels and button names:
//  1. signs in with a wrong password (the API's message must show), then the right one;
//  2. creates a channel (and edits its title), a device for it, and a stream key;
//  3. reads the key from the one-time dialog (which must say "shown once" and give the
//     full RTMP URL), closes it, reloads the key list and then the whole page: the key
//     must be nowhere (HTML, text, form values, storage, cookies, console);
//  4. publishes with ffmpeg (testsrc2 + sine, x264 + AAC, -re) to the RTMP URL the page
//     showed, and waits until the dashboard lists the channel live with its resolution;
//  5. opens the Events, Users and Webhooks tabs: each must load or say clearly why not;
//  6. signs out.
// The result carries `stream_key` so that the caller can check its server's log for it.
//
// Chromium is Debian's (`apt-get install chromium`), or $CHROMIUM.

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      email: { type: 'string' },
      rtmp: { type: 'string' },
      channel: { type: 'string', default: `console${Date.now() % 1_000_000}` },
      'publish-seconds': { type: 'string', default: '20' },
      timeout: { type: 'string', default: '60' },
      screenshot: { type: 'string' },
    },
  });
  const password = process.env.STARLING_ADMIN_PASSWORD;
  if (positionals.length !== 1 || !values.email || !values.rtmp || !password) {
    throw new Error('usage: STARLING_ADMIN_PASSWORD=... admin.mjs BASE_URL --email E --rtmp rtmp://HOST:PORT/live [--channel NAME] [--publish-seconds 20] [--timeout 60] [--screenshot FILE]');
  }
  return {
    base: positionals[0].replace(/\/+$/, ''),
    email: values.email,
    password,
    rtmp: values.rtmp.replace(/\/+$/, ''),
    channel: values.channel,
    publishSeconds: Number(values['publish-seconds']),
    timeout: Number(values.timeout),
    screenshot: values.screenshot,
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Where `secret` can be found in the page: HTML, text, form values, storage, cookies. */
async function findSecret(page, secret) {
  const where = await page.evaluate((s) => {
    const found = [];
    if (document.documentElement.outerHTML.includes(s)) found.push('html');
    if (document.body.innerText.includes(s)) found.push('text');
    for (const f of document.querySelectorAll('input, textarea, select')) {
      if (f.value && f.value.includes(s)) found.push(`value of #${f.id || f.name}`);
    }
    for (const [name, store] of [['localStorage', localStorage], ['sessionStorage', sessionStorage]]) {
      for (let i = 0; i < store.length; i++) {
        if ((store.getItem(store.key(i)) || '').includes(s)) found.push(`${name}.${store.key(i)}`);
      }
    }
    if (document.cookie.includes(s)) found.push('document.cookie');
    return found;
  }, secret);
  if ((await page.content()).includes(secret)) where.push('page.content()');
  return where;
}

function publish(url, seconds) {
  const args = [
    '-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '25', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '64k',
    '-f', 'flv', url,
  ];
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-2000);
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (err) => resolve({ code: null, signal: null, error: err.message }));
  });
  return {
    exited,
    // ffmpeg's own words, minus the URL (it holds the key).
    stderr: () => stderr.split(url).join('rtmp://…/KEY').trim(),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function run(page, opts, result, secretsSeen) {
  const step = (name) => {
    result.step = name;
  };
  const T = 15_000;

  step('open /admin');
  const res = await page.goto(`${opts.base}/admin`, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  if (!res || !res.ok()) throw new Error(`GET /admin answered ${res ? res.status() : 'nothing'}`);
  const login = page.locator('#login-view');
  await login.waitFor({ state: 'visible', timeout: T });

  step('wrong password');
  await login.getByLabel('Email').fill(opts.email);
  await login.getByLabel('Password').fill('not the password');
  await login.getByRole('button', { name: 'Sign in' }).click();
  const loginError = page.locator('#login-error');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('Sign-in failed'), null, { timeout: T });
  result.login_error = await loginError.textContent();
  if (!/authentication required|throttled|too many/i.test(result.login_error)) {
    throw new Error(`the login error does not carry the API's message: ${JSON.stringify(result.login_error)}`);
  }

  step('sign in');
  await login.getByLabel('Password').fill(opts.password);
  await login.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#tabs').waitFor({ state: 'visible', timeout: T });
  await page.waitForFunction((email) => document.getElementById('whoami-text').textContent.includes(email), opts.email, { timeout: T });
  result.whoami = await page.locator('#whoami-text').textContent();
  if (await page.evaluate(() => document.cookie.includes('starling_session'))) {
    throw new Error('the session cookie is readable from the page (it must be HttpOnly)');
  }

  step('create a channel');
  await page.getByRole('link', { name: 'Channels' }).click();
  const channels = page.locator('#view-channels');
  await channels.locator('summary', { hasText: 'Create a channel' }).click();
  await channels.getByLabel('Name (in URLs)').fill(opts.channel);
  await channels.getByLabel('Title', { exact: true }).fill('Console test');
  await channels.getByLabel('Visibility').selectOption('public');
  await channels.getByLabel('Latency mode').selectOption('low');
  await channels.getByLabel('DVR window (seconds)').fill('60');
  await channels.getByRole('button', { name: 'Create channel' }).click();
  const chRow = page.locator(`#channels-table tr[data-name="${opts.channel}"]`);
  await chRow.waitFor({ timeout: T });
  const channelId = await chRow.getAttribute('data-id');

  step('edit the channel');
  await chRow.getByRole('button', { name: `Edit channel ${opts.channel}` }).click();
  const edit = page.locator('#channel-edit');
  await edit.getByLabel('Title').fill('Console test, edited');
  // Reframing, its subject and the highlights' sensitivity (the API's fields).
  await edit.getByLabel('Vertical reframing').check();
  await edit.getByLabel('Subject the window follows').selectOption('central');
  await edit.getByLabel('Highlight sensitivity (0.1 to 10)').fill('2.5');
  await edit.getByRole('button', { name: 'Save' }).click();
  await page.waitForFunction((name) => {
    const row = document.querySelector(`#channels-table tr[data-name="${name}"]`);
    return row && row.textContent.includes('Console test, edited');
  }, opts.channel, { timeout: T });
  const saved = await page.evaluate(async (id) => {
    const res = await fetch(`/api/v1/channels/${id}`, { credentials: 'same-origin' });
    return res.ok ? res.json() : { status: res.status };
  }, channelId);
  if (saved.reframe !== true || saved.reframe_subject !== 'central' || saved.highlight_sensitivity !== 2.5) {
    throw new Error(`the channel's reframing was not saved as edited: ${JSON.stringify(saved)}`);
  }

  step('register a device');
  const device = `encoder ${opts.channel}`;
  await page.getByRole('link', { name: 'Devices & keys' }).click();
  const devices = page.locator('#view-devices');
  await devices.locator('summary', { hasText: 'Register a device' }).click();
  await devices.getByLabel('Name').fill(device);
  await devices.getByLabel('Kind').selectOption('encoder');
  await devices.locator('#device-create').getByLabel('Channel').selectOption(channelId);
  await devices.getByRole('button', { name: 'Register device' }).click();
  const keysPanel = page.locator('#keys-panel');
  await keysPanel.waitFor({ state: 'visible', timeout: T });
  await page.waitForFunction((d) => document.getElementById('keys-title').textContent.includes(d), device, { timeout: T });

  step('create a key');
  await keysPanel.getByLabel('RTMP ingest server').fill(opts.rtmp);
  await keysPanel.getByLabel('RTMP ingest server').press('Tab'); // `change`
  await keysPanel.getByRole('button', { name: 'Create key' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor({ state: 'visible', timeout: T });
  const dialogText = await dialog.innerText();
  if (!/shown once/i.test(dialogText)) throw new Error(`the key dialog does not say "shown once": ${dialogText.slice(0, 300)}`);
  // The one read of the key.
  const key = await dialog.getByLabel('Stream key').inputValue();
  const rtmpUrl = await dialog.getByLabel('Full RTMP URL (server + key)').inputValue();
  secretsSeen.push(key);
  result.stream_key = key;
  result.key_prefix = key.slice(0, 11);
  if (!/^sk_[A-Za-z0-9_-]{20,}$/.test(key)) throw new Error(`the dialog shows no stream key (${JSON.stringify(key.slice(0, 6))}…)`);
  if (rtmpUrl !== `${opts.rtmp}/${key}`) throw new Error('the RTMP URL is not the ingest server followed by the key');
  const storedNow = await findSecret(page, key);
  if (storedNow.some((w) => /Storage|cookie/.test(w))) throw new Error(`the key was stored by the page: ${storedNow.join(', ')}`);

  step('close the key dialog and reload the keys');
  await dialog.getByRole('button', { name: 'Done, I saved it' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: T });
  await keysPanel.getByRole('button', { name: 'Reload keys' }).click();
  await page.waitForFunction((prefix) => {
    const t = document.getElementById('keys-table');
    return t && [...t.tBodies[0].rows].some((r) => r.textContent.includes(prefix));
  }, result.key_prefix, { timeout: T });
  let leaks = await findSecret(page, key);
  if (leaks.length) throw new Error(`after the key list was reloaded the key is still in the page: ${leaks.join(', ')}`);

  step('reload the page and list the keys');
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.locator('#tabs').waitFor({ state: 'visible', timeout: T }); // the cookie session holds
  await page.getByRole('link', { name: 'Devices & keys' }).click();
  await page.getByRole('button', { name: `Stream keys of ${device}` }).click();
  await page.waitForFunction((prefix) => {
    const t = document.getElementById('keys-table');
    return [...t.tBodies[0].rows].some((r) => r.textContent.includes(prefix));
  }, result.key_prefix, { timeout: T });
  leaks = await findSecret(page, key);
  if (leaks.length) throw new Error(`after a page reload the key is in the page: ${leaks.join(', ')}`);

  step('publish with ffmpeg and watch the dashboard');
  const publisher = publish(rtmpUrl, opts.publishSeconds);
  try {
    const started = Date.now();
    await page.getByRole('link', { name: 'Dashboard' }).click();
    const row = page.locator(`#live-table tr[data-channel="${opts.channel}"]`);
    const deadline = started + Math.min(opts.publishSeconds, 30) * 1000;
    let text = '';
    while (true) {
      if (await row.count()) {
        text = (await row.innerText()).replace(/\s+/g, ' ').trim();
        if (text.includes('320×240')) break;
      }
      const gone = await Promise.race([publisher.exited.then((e) => e), sleep(250).then(() => null)]);
      if (gone) throw new Error(`ffmpeg exited (${JSON.stringify(gone)}) before the dashboard showed the channel live: ${publisher.stderr()}`);
      if (Date.now() > deadline) {
        throw new Error(`the dashboard did not show ${opts.channel} live at 320×240 within ${Math.round((deadline - started) / 1000)} s (row: ${JSON.stringify(text)}; ffmpeg: ${publisher.stderr()})`);
      }
    }
    result.live_after_ms = Date.now() - started;
    result.dashboard_row = text;
    if (!/H\.264/.test(text) || !/AAC/.test(text)) throw new Error(`the dashboard row lacks the codecs: ${text}`);
    const link = await row.getByRole('link', { name: opts.channel }).getAttribute('href');
    if (link !== `/watch/${opts.channel}`) throw new Error(`the dashboard links ${opts.channel} to ${link}`);
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });

    step('the keys list shows the key used');
    await page.getByRole('link', { name: 'Devices & keys' }).click();
    await page.getByRole('button', { name: `Stream keys of ${device}` }).click();
    await page.waitForFunction((prefix) => {
      const t = document.getElementById('keys-table');
      return [...t.tBodies[0].rows].some((r) => r.textContent.includes(prefix) && r.textContent.includes('127.0.0.1'));
    }, result.key_prefix, { timeout: T });
  } finally {
    await publisher.stop();
  }

  step('the other tabs load or explain');
  result.tabs = {};
  for (const [tab, name] of [['events', 'Events'], ['users', 'Users'], ['webhooks', 'Webhooks']]) {
    await page.getByRole('link', { name, exact: true }).click();
    await page.waitForFunction((t) => {
      const s = document.getElementById(`${t}-status`);
      return !document.getElementById(`view-${t}`).hidden && s && !s.textContent.startsWith('Loading');
    }, tab, { timeout: T });
    const status = (await page.locator(`#${tab}-status`).textContent()).trim();
    const rows = await page.locator(`#${tab}-table tbody tr`).count();
    result.tabs[tab] = status || `${rows} row${rows === 1 ? '' : 's'}`;
    if (!status && rows === 0) throw new Error(`the ${name} tab shows neither rows nor a message`);
  }
  const admins = await page.locator('#users-table tbody tr', { hasText: opts.email }).count();
  if (!/does not offer|Could not/.test(result.tabs.users) && admins !== 1) {
    throw new Error(`the Users tab loaded but does not list ${opts.email}`);
  }

  step('sign out');
  await page.getByRole('button', { name: 'Log out' }).click();
  await login.waitFor({ state: 'visible', timeout: T });
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  if (me !== 401) throw new Error(`after signing out GET /api/v1/me answered ${me}`);
  leaks = await findSecret(page, key);
  if (leaks.length) throw new Error(`after signing out the key is in the page: ${leaks.join(', ')}`);
  delete result.step;
  result.ok = true;
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
    console.log(JSON.stringify({ ok: false, reason: `harness watchdog: no result after ${opts.timeout} s` }));
    process.exit(1);
  }, opts.timeout * 1000);
  watchdog.unref();

  const pageErrors = [];
  const consoleText = [];
  const secretsSeen = [];
  const result = { ok: false, url: `${opts.base}/admin`, channel: opts.channel, page_errors: pageErrors };
  const started = Date.now();
  let browser;
  let page;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err && err.message ? err.message : err)));
    page.on('console', (msg) => consoleText.push(msg.text()));
    await run(page, opts, result, secretsSeen);
    if (pageErrors.length) {
      result.ok = false;
      result.reason = `uncaught errors in the page: ${pageErrors.join(' | ')}`;
    }
  } catch (err) {
    result.ok = false;
    result.reason = `${result.step ? `${result.step}: ` : ''}${(err && err.message ? err.message : String(err)).split('\n')[0]}`;
    if (page && opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true }).catch(() => {});
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  for (const s of secretsSeen) {
    if (consoleText.some((t) => t.includes(s))) {
      result.ok = false;
      result.reason = 'the stream key appeared in the browser console';
    }
  }
  result.seconds = Math.round((Date.now() - started) / 100) / 10;
  console.log(JSON.stringify(result));
  return result.ok ? 0 : 1;
}

process.exitCode = await main();
