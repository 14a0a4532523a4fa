// The P2P grid in the watch page (docs/p2p.md): viewers of a channel fetch segments
// from each other over WebRTC data channels, and from the edge (the booster) whatever
// peers cannot deliver before it is needed. Every piece from a peer is checked against
// the origin's signed list of SHA-256 digests (`…/RENDITION/pieces.txt`, Ed25519, key
// from the tracker) before it reaches the player or another peer; a peer that sent a bad
// one is dropped and reported.
//
// `window.StarlingP2P.Agent` joins the tracker (`/p2p/CHANNEL` on the node the playlists
// come from) once per rendition played; `StarlingP2P.loader(Hls, agent)` is an hls.js
// fragment loader that asks it for media segments (init sections, parts and playlists
// go to the edge as usual). Urgent segments (due within URGENT_S of the playhead) go to
// the edge at once; others wait a moment for a peer to announce them (a random moment,
// so that one viewer of many fetches each new segment from the edge and the others from
// it), are fetched from a peer, and the edge is asked in parallel when the deadline
// nears. `agent.stats` (peer and edge bytes, peers, bad pieces) is what the page shows
// and reports to `/p2p/CHANNEL/beacon` every few seconds.
'use strict';

(() => {
  const CHUNK = 16 * 1024;
  const MAX_PIECE = 16 * 1024 * 1024;
  const WHOLE = 0xffff;
  // Segments kept to share (about a minute and a half of 2 s segments).
  const STORE_PIECES = 40;
  // Closer to the playhead than this, a segment comes from the edge at once.
  const URGENT_S = 2.5;
  // The longest a viewer waits for a peer to announce a new segment before the edge.
  const PEER_WAIT_MAX_MS = 3000;
  // A transfer from a peer not done this long before the segment is due: the edge too.
  const BOOST_MARGIN_S = 1.5;
  const BEACON_MS = 5000;
  // Data channel backpressure: stop sending above HIGH, resume below LOW.
  const HIGH_WATER = 1 << 20;
  const LOW_WATER = 256 << 10;
  // A peer that took this much from us and gave back less than a tenth is choked for
  // CHOKE_MS (then given another chance: the optimistic unchoke).
  const FREELOAD_BYTES = 32 << 20;
  const CHOKE_MS = 30000;
  const F = { HAVE: 1, WANT: 2, CANCEL: 3, DATA: 4, NONE: 5, CHOKE: 6, UNCHOKE: 7 };
  const MEDIA_RE = /\/live\/([A-Za-z0-9_-]{1,64})\/([a-z0-9][a-z0-9_-]{0,31})\/([0-9a-f]{16})\/(\d{1,19})\.m4s(?:\?|$)/;

  // ---- pieces and frames (crates/delivery/p2p/src/wire.rs) ----

  function pieceUri(p) {
    const s = p.session.toString(16).padStart(16, '0');
    return p.part === WHOLE ? `${s}/${p.msn}.m4s` : `${s}/${p.msn}.${p.part}.m4s`;
  }

  function parseUri(uri) {
    const m = /^([0-9a-f]{16})\/(\d{1,19})(?:\.(\d{1,5}))?\.m4s$/.exec(uri);
    if (!m) return null;
    const part = m[3] === undefined ? WHOLE : Number(m[3]);
    if (m[3] !== undefined && part >= WHOLE) return null;
    return { session: BigInt(`0x${m[1]}`), msn: BigInt(m[2]), part };
  }

  function putPiece(view, off, p) {
    view.setBigUint64(off, p.session);
    view.setBigUint64(off + 8, p.msn);
    view.setUint16(off + 16, p.part);
  }

  function readPiece(view, off) {
    return { session: view.getBigUint64(off), msn: view.getBigUint64(off + 8), part: view.getUint16(off + 16) };
  }

  function encode(f) {
    let buf;
    switch (f.type) {
      case F.HAVE: buf = new ArrayBuffer(19); putPiece(new DataView(buf), 1, f.piece); break;
      case F.WANT: buf = new ArrayBuffer(23); new DataView(buf).setUint32(1, f.req); putPiece(new DataView(buf), 5, f.piece); break;
      case F.CANCEL: case F.NONE: buf = new ArrayBuffer(5); new DataView(buf).setUint32(1, f.req); break;
      case F.DATA: {
        buf = new ArrayBuffer(13 + f.bytes.byteLength);
        const v = new DataView(buf);
        v.setUint32(1, f.req);
        v.setUint32(5, f.offset);
        v.setUint32(9, f.total);
        new Uint8Array(buf, 13).set(f.bytes);
        break;
      }
      default: buf = new ArrayBuffer(1);
    }
    new Uint8Array(buf)[0] = f.type;
    return buf;
  }

  // One frame, or an Error naming what is wrong with it.
  function decode(buf) {
    if (!(buf instanceof ArrayBuffer) || buf.byteLength === 0) throw new Error('empty or text frame');
    const v = new DataView(buf);
    const type = v.getUint8(0);
    const len = buf.byteLength - 1;
    const need = (n, name) => { if (len !== n) throw new Error(`${name} frame of ${len} bytes, expected ${n}`); };
    switch (type) {
      case F.HAVE: need(18, 'HAVE'); return { type, piece: readPiece(v, 1) };
      case F.WANT: need(22, 'WANT'); return { type, req: v.getUint32(1), piece: readPiece(v, 5) };
      case F.CANCEL: need(4, 'CANCEL'); return { type, req: v.getUint32(1) };
      case F.NONE: need(4, 'NONE'); return { type, req: v.getUint32(1) };
      case F.DATA:
        if (len <= 12 || len > 12 + CHUNK) throw new Error(`DATA frame of ${len} bytes`);
        return { type, req: v.getUint32(1), offset: v.getUint32(5), total: v.getUint32(9), bytes: new Uint8Array(buf, 13) };
      case F.CHOKE: need(0, 'CHOKE'); return { type };
      case F.UNCHOKE: need(0, 'UNCHOKE'); return { type };
      default: throw new Error(`unknown frame type ${type}`);
    }
  }

  // ---- piece lists (crates/delivery/p2p/src/pieces.rs) ----

  function unhex(s) {
    if (!/^(?:[0-9a-f]{2})*$/.test(s)) throw new Error('not hex');
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i += 1) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
    return out;
  }

  function hex(buf) {
    return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // The digests of a signed list, checked with `key` (a CryptoKey), as a Map.
  async function readList(text, key) {
    const end = text.replace(/\n+$/, '').lastIndexOf('\n') + 1;
    if (end <= 0) throw new Error('piece list without a signature');
    const body = text.slice(0, end);
    const sig = text.slice(end).trim();
    if (!sig.startsWith('sig ')) throw new Error('piece list: the last line is not `sig`');
    const ok = await crypto.subtle.verify('Ed25519', key, unhex(sig.slice(4)), new TextEncoder().encode(body));
    if (!ok) throw new Error('piece list: the signature does not verify');
    const pieces = new Map();
    for (const line of body.split('\n')) {
      if (!line.startsWith('piece ')) continue;
      const [uri, len, sha] = line.slice(6).split(' ');
      pieces.set(uri, { len: Number(len), sha });
    }
    return pieces;
  }

  // ---- one peer ----

  class Peer {
    constructor(swarm, id, pc) {
      this.swarm = swarm;
      this.id = id;
      this.pc = pc;
      this.dc = null;
      this.has = new Set();
      this.open = false;
      this.nextReq = 1;
      this.cancelled = [];
      // Our requests of it: req → { uri, total, chunks, got, resolve, reject }.
      this.wanted = new Map();
      // Its requests of us being served: req → cancelled flag holder.
      this.serving = new Map();
      this.chokedUs = false;
      this.chokedByUs = false;
      this.bytesIn = 0;
      this.bytesOut = 0;
      this.closed = false;
      // Closed to make way for a new connection to the same peer.
      this.quiet = false;
    }

    attach(dc) {
      this.dc = dc;
      dc.binaryType = 'arraybuffer';
      dc.bufferedAmountLowThreshold = LOW_WATER;
      dc.onopen = () => {
        this.open = true;
        for (const uri of this.swarm.store.keys()) this.send({ type: F.HAVE, piece: parseUri(uri) });
        this.swarm.agent.refresh();
      };
      dc.onclose = () => this.close('data channel closed');
      dc.onmessage = (e) => {
        let f;
        try {
          f = decode(e.data);
        } catch (err) {
          this.close(`bad frame: ${err.message}`);
          return;
        }
        this.onFrame(f);
      };
    }

    send(frame) {
      if (!this.open || this.dc.readyState !== 'open') return false;
      this.dc.send(encode(frame));
      return true;
    }

    onFrame(f) {
      switch (f.type) {
        case F.HAVE: {
          const uri = pieceUri(f.piece);
          this.has.add(uri);
          if (this.has.size > 4 * STORE_PIECES) this.has.delete(this.has.values().next().value);
          this.swarm.announced(uri, this);
          break;
        }
        case F.WANT: this.serve(f.req, pieceUri(f.piece)); break;
        case F.CANCEL: {
          const s = this.serving.get(f.req);
          if (s) s.cancelled = true;
          break;
        }
        case F.DATA: this.onData(f); break;
        case F.NONE: {
          const w = this.wanted.get(f.req);
          if (w) {
            this.wanted.delete(f.req);
            this.has.delete(w.uri);
            w.reject(new Error('peer does not have it'));
          }
          break;
        }
        case F.CHOKE: this.chokedUs = true; break;
        case F.UNCHOKE: this.chokedUs = false; break;
        default: break;
      }
    }

    // Reassembles only what we asked for, in order, up to its announced size.
    onData(f) {
      const w = this.wanted.get(f.req);
      // Chunks of a request cancelled lately are still on the way: dropped quietly.
      if (!w && this.cancelled.includes(f.req)) return undefined;
      if (!w) return this.close(`DATA for request ${f.req}, which was not made`);
      if (f.total > MAX_PIECE) return this.close(`DATA announces ${f.total} bytes`);
      if (w.total === null) {
        w.total = f.total;
        w.buf = new Uint8Array(f.total);
      }
      if (f.total !== w.total) return this.close('DATA changes its total');
      if (f.offset !== w.got) return this.close(`DATA at ${f.offset}, expected ${w.got}`);
      if (f.offset + f.bytes.byteLength > w.total) return this.close('DATA runs past its total');
      w.buf.set(f.bytes, f.offset);
      w.got += f.bytes.byteLength;
      this.bytesIn += f.bytes.byteLength;
      this.swarm.agent.stats.peerBytesRaw += f.bytes.byteLength;
      if (w.got === w.total) {
        this.wanted.delete(f.req);
        w.resolve(w.buf.buffer);
      }
      return undefined;
    }

    // Asks it for `uri`: resolves with the bytes (unverified), rejects on NONE, close
    // or `abort`.
    want(uri) {
      const req = this.nextReq;
      this.nextReq = (this.nextReq + 1) >>> 0 || 1;
      let entry;
      const p = new Promise((resolve, reject) => {
        entry = { uri, total: null, buf: null, got: 0, resolve, reject };
      });
      this.wanted.set(req, entry);
      if (!this.send({ type: F.WANT, req, piece: parseUri(uri) })) {
        this.wanted.delete(req);
        entry.reject(new Error('peer not open'));
      }
      p.cancel = () => {
        if (this.wanted.delete(req)) {
          this.cancelled.push(req);
          if (this.cancelled.length > 64) this.cancelled.shift();
          this.send({ type: F.CANCEL, req });
          entry.reject(new Error('cancelled'));
        }
      };
      p.progress = () => (entry.total ? entry.got / entry.total : 0);
      return p;
    }

    async serve(req, uri) {
      const data = this.swarm.store.get(uri);
      if (!data || this.chokedByUs) {
        this.send({ type: F.NONE, req });
        return;
      }
      const holder = { cancelled: false };
      this.serving.set(req, holder);
      const bytes = new Uint8Array(data);
      for (let off = 0; off < bytes.byteLength && !holder.cancelled && !this.closed; off += CHUNK) {
        if (this.dc.bufferedAmount > HIGH_WATER) {
          await new Promise((r) => this.dc.addEventListener('bufferedamountlow', r, { once: true }));
          if (this.closed) break;
        }
        const chunk = bytes.subarray(off, Math.min(off + CHUNK, bytes.byteLength));
        if (!this.send({ type: F.DATA, req, offset: off, total: bytes.byteLength, bytes: chunk })) break;
        this.bytesOut += chunk.byteLength;
        this.swarm.agent.stats.uploadedBytes += chunk.byteLength;
      }
      this.serving.delete(req);
      this.considerChoking();
    }

    // Tit for tat, gently: a peer that took much and gave little is choked for a while.
    considerChoking() {
      if (this.chokedByUs || this.bytesOut < FREELOAD_BYTES || this.bytesIn * 10 >= this.bytesOut) return;
      this.chokedByUs = true;
      this.send({ type: F.CHOKE });
      setTimeout(() => {
        if (this.closed) return;
        this.chokedByUs = false;
        this.bytesOut = 0;
        this.bytesIn = 0;
        this.send({ type: F.UNCHOKE });
      }, CHOKE_MS);
    }

    close(why) {
      if (this.closed) return;
      this.closed = true;
      this.open = false;
      for (const w of this.wanted.values()) w.reject(new Error(`peer gone: ${why}`));
      this.wanted.clear();
      try { this.pc.close(); } catch { /* already closed */ }
      if (!this.quiet) this.swarm.agent.note(`peer ${this.id} closed: ${why}`);
      this.swarm.dropped(this, why);
    }
  }

  // ---- one rendition's swarm ----

  class Swarm {
    constructor(agent, rendition) {
      this.agent = agent;
      this.rendition = rendition;
      this.id = null;
      this.key = null;
      this.ice = [];
      this.peers = new Map();
      this.banned = new Set();
      // uri → ArrayBuffer, oldest first.
      this.store = new Map();
      // uri → [resolve] waiting for a HAVE.
      this.waiting = new Map();
      this.list = null;
      this.listAt = 0;
      this.listFetch = null;
      this.ws = null;
      this.closed = false;
      this.connect();
    }

    connect() {
      const base = this.agent.base || location.origin;
      const url = new URL(`/p2p/${this.agent.channel}`, base);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      if (this.agent.token) url.searchParams.set('token', this.agent.token);
      const ws = new WebSocket(url);
      this.ws = ws;
      ws.onopen = () => {
        ws.send(JSON.stringify({
          t: 'join',
          rendition: this.rendition,
          ...(this.agent.region ? { region: this.agent.region } : {}),
          upload_kbps: this.agent.uploadKbps,
          position: this.agent.position(),
        }));
      };
      ws.onmessage = (e) => {
        let m;
        try { m = JSON.parse(e.data); } catch { return; }
        this.onTracker(m);
      };
      ws.onclose = (e) => {
        this.ws = null;
        if (!this.closed) this.agent.note(`tracker connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
        // Reconnect (the node restarted or shut down: the Usher's next answer may be
        // another edge); peers already connected keep working meanwhile.
        if (!this.closed) setTimeout(() => { if (!this.closed) this.connect(); }, 3000 + Math.random() * 2000);
      };
    }

    track(m) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
    }

    async onTracker(m) {
      switch (m.t) {
        case 'welcome':
          this.id = m.id;
          this.ice = Array.isArray(m.ice) ? m.ice : [];
          try {
            this.key = await crypto.subtle.importKey('raw', unhex(m.key), { name: 'Ed25519' }, false, ['verify']);
          } catch (err) {
            this.agent.note(`P2P off: this browser cannot check Ed25519 signatures (${err.message})`);
            this.close();
            return;
          }
          this.agent.note(`joined ${this.rendition} as ${m.id}; ${(m.peers || []).length} peers offered`);
          for (const p of m.peers || []) this.offer(p.id);
          break;
        case 'peers':
          for (const p of m.peers || []) if (!this.peers.has(p.id)) this.offer(p.id);
          break;
        case 'signal': await this.onSignal(m.from, m.data); break;
        case 'banned': {
          this.banned.add(m.id);
          const p = this.peers.get(m.id);
          if (p) p.close('banned by the tracker');
          break;
        }
        case 'error':
          this.agent.note(`tracker: ${m.code}: ${m.message}`);
          break;
        default: break;
      }
    }

    newPeer(id) {
      const pc = new RTCPeerConnection({ iceServers: this.ice });
      const peer = new Peer(this, id, pc);
      this.peers.set(id, peer);
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'failed' || pc.connectionState === 'closed') peer.close(`connection ${pc.connectionState}`);
      };
      return peer;
    }

    // SDP with every candidate in it (no trickle: one message each way).
    async gathered(pc) {
      if (pc.iceGatheringState !== 'complete') {
        await new Promise((resolve) => {
          const t = setTimeout(resolve, 2000);
          pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
          });
        });
      }
      return pc.localDescription;
    }

    async offer(id) {
      if (id === this.id || this.banned.has(id) || this.peers.has(id) || this.peers.size >= 12) return;
      const peer = this.newPeer(id);
      peer.attach(peer.pc.createDataChannel('starling-p2p', { ordered: true }));
      try {
        await peer.pc.setLocalDescription(await peer.pc.createOffer());
        const d = await this.gathered(peer.pc);
        this.track({ t: 'signal', to: id, data: { type: d.type, sdp: d.sdp } });
      } catch (err) {
        peer.close(`offer failed: ${err.message}`);
      }
    }

    async onSignal(from, data) {
      if (!data || typeof data.sdp !== 'string' || this.banned.has(from)) return;
      try {
        if (data.type === 'offer') {
          const mine = this.peers.get(from);
          if (mine) {
            // Both offered at once (glare): the offer of the peer with the smaller id
            // wins; the other side drops its own, quietly (no call for more peers).
            if (mine.pc.signalingState === 'have-local-offer' && this.id < from) return;
            mine.quiet = true;
            mine.close('replaced by its offer');
          }
          const peer = this.newPeer(from);
          peer.pc.ondatachannel = (e) => peer.attach(e.channel);
          await peer.pc.setRemoteDescription({ type: 'offer', sdp: data.sdp });
          await peer.pc.setLocalDescription(await peer.pc.createAnswer());
          const d = await this.gathered(peer.pc);
          this.track({ t: 'signal', to: from, data: { type: d.type, sdp: d.sdp } });
        } else if (data.type === 'answer') {
          const peer = this.peers.get(from);
          if (peer && peer.pc.signalingState === 'have-local-offer') {
            await peer.pc.setRemoteDescription({ type: 'answer', sdp: data.sdp });
          }
        }
      } catch (err) {
        const peer = this.peers.get(from);
        if (peer) peer.close(`signalling failed: ${err.message}`);
      }
    }

    dropped(peer) {
      if (this.peers.get(peer.id) === peer) this.peers.delete(peer.id);
      this.agent.refresh();
      // Make up for lost peers (not for one replaced by a fresh connection).
      if (!this.closed && !peer.quiet && this.peers.size < 3) this.track({ t: 'peers' });
    }

    announced(uri, peer) {
      const w = this.waiting.get(uri);
      if (w) {
        this.waiting.delete(uri);
        for (const resolve of w) resolve(peer);
      }
    }

    // A peer holding `uri` now, or the first to announce it within `ms` (null if none).
    holder(uri, ms) {
      const now = this.bestHolder(uri);
      if (now || ms <= 0) return Promise.resolve(now);
      return new Promise((resolve) => {
        const list = this.waiting.get(uri) || [];
        list.push(resolve);
        this.waiting.set(uri, list);
        setTimeout(() => resolve(this.bestHolder(uri)), ms);
      });
    }

    bestHolder(uri) {
      let best = null;
      for (const p of this.peers.values()) {
        if (!p.open || p.chokedUs || !p.has.has(uri)) continue;
        if (!best || p.wanted.size < best.wanted.size) best = p;
      }
      return best;
    }

    keep(uri, data) {
      if (this.store.has(uri)) return;
      this.store.set(uri, data);
      while (this.store.size > STORE_PIECES) this.store.delete(this.store.keys().next().value);
      const piece = parseUri(uri);
      for (const p of this.peers.values()) p.send({ type: F.HAVE, piece });
    }

    // The signed digests, fetched again when `uri` is not in the copy we have.
    async digests(uri) {
      const fresh = performance.now() - this.listAt < 500;
      if (this.list && (this.list.has(uri) || fresh)) return this.list;
      if (!this.listFetch) {
        const url = new URL(`/live/${this.agent.channel}/${this.rendition}/pieces.txt`, this.agent.base || location.origin);
        if (this.agent.token) url.searchParams.set('token', this.agent.token);
        this.listFetch = fetch(url, { cache: 'no-store' })
          .then((r) => { if (!r.ok) throw new Error(`pieces.txt: HTTP ${r.status}`); return r.text(); })
          .then((text) => readList(text, this.key))
          .then((list) => { this.list = list; this.listAt = performance.now(); return list; })
          .finally(() => { this.listFetch = null; });
      }
      return this.listFetch;
    }

    // Whether `data` is the piece the origin listed as `uri`.
    async verify(uri, data) {
      const list = await this.digests(uri);
      const want = list.get(uri);
      if (!want) throw new Error(`${uri} is not in the piece list`);
      if (want.len !== data.byteLength) return false;
      return hex(await crypto.subtle.digest('SHA-256', data)) === want.sha;
    }

    close() {
      this.closed = true;
      if (this.ws) this.ws.close();
      for (const p of [...this.peers.values()]) p.close('leaving');
    }
  }

  // ---- the agent ----

  class Agent {
    // { channel, base ('' = this page's origin), token, region, video, uploadKbps }
    constructor(opts) {
      this.channel = opts.channel;
      this.base = opts.base || '';
      this.token = opts.token || '';
      this.region = opts.region || '';
      this.video = opts.video;
      this.uploadKbps = opts.uploadKbps || 4000;
      this.qoe = opts.qoe || null;
      this.swarms = new Map();
      this.stats = {
        peerBytes: 0,
        peerBytesRaw: 0,
        edgeBytes: 0,
        uploadedBytes: 0,
        piecesFromPeers: 0,
        piecesFromEdge: 0,
        boosted: 0,
        badPieces: 0,
        peers: 0,
        notes: [],
      };
      this.sent = { peer: 0, edge: 0, played: 0, rebuffer: 0, startup: false };
      this.beaconTimer = setInterval(() => this.beacon(), BEACON_MS);
    }

    note(text) {
      this.stats.notes.push(text);
      if (this.stats.notes.length > 20) this.stats.notes.shift();
    }

    refresh() {
      let n = 0;
      for (const s of this.swarms.values()) for (const p of s.peers.values()) if (p.open) n += 1;
      this.stats.peers = n;
    }

    position() {
      return 0;
    }

    swarm(rendition) {
      let s = this.swarms.get(rendition);
      if (!s) {
        s = new Swarm(this, rendition);
        this.swarms.set(rendition, s);
      }
      return s;
    }

    // What of a fragment request is ours: a whole media segment of this channel.
    claim(url) {
      const m = MEDIA_RE.exec(url);
      if (!m || m[1] !== this.channel) return null;
      return { rendition: m[2], uri: `${m[3]}/${m[4]}.m4s` };
    }

    async fromEdge(url, signal) {
      const res = await fetch(url, { signal });
      if (!res.ok) {
        const err = new Error(`HTTP ${res.status}`);
        err.status = res.status;
        throw err;
      }
      const data = await res.arrayBuffer();
      this.stats.edgeBytes += data.byteLength;
      this.stats.piecesFromEdge += 1;
      return data;
    }

    // The segment at `url`, `dueIn` seconds before the player needs it: a copy, since
    // hls.js hands (and so detaches) the buffer to its transmuxing worker, and the
    // original stays here to share.
    async load(url, dueIn, signal) {
      const data = await this.fetchPiece(url, dueIn, signal);
      return data.slice(0);
    }

    async fetchPiece(url, dueIn, signal) {
      const claim = this.claim(url);
      const swarm = claim && this.swarm(claim.rendition);
      if (!swarm || !swarm.key || dueIn < URGENT_S) {
        const data = await this.fromEdge(url, signal);
        if (swarm && swarm.key) swarm.keep(claim.uri, data);
        return data;
      }
      const { uri } = claim;
      const kept = swarm.store.get(uri);
      if (kept) return kept;
      // Wait a random moment for a peer to announce it, skewed (u^¼): a few viewers wait
      // briefly and fetch from the edge, most wait long enough for the segment to spread
      // to them through the swarm; never past 70 % of the slack, so a peer's transfer
      // still has time before the deadline.
      const slack = dueIn - URGENT_S;
      const wait = Math.min(slack * 700, PEER_WAIT_MAX_MS * Math.random() ** 0.25);
      let peer = await swarm.holder(uri, wait);
      const deadline = performance.now() + (dueIn - BOOST_MARGIN_S) * 1000;
      const tried = new Set();
      while (peer && performance.now() < deadline && !(signal && signal.aborted)) {
        tried.add(peer);
        const transfer = peer.want(uri);
        const timeLeft = deadline - performance.now();
        // The booster: the edge as well once the deadline comes, whichever ends first.
        let boostTimer;
        const boost = new Promise((resolve) => { boostTimer = setTimeout(resolve, Math.max(0, timeLeft), 'boost'); });
        let got;
        try {
          got = await Promise.race([transfer, boost]);
        } catch (err) {
          clearTimeout(boostTimer);
          peer = [...swarm.peers.values()].find((p) => p.open && !p.chokedUs && p.has.has(uri) && !tried.has(p)) || null;
          continue;
        }
        clearTimeout(boostTimer);
        if (got === 'boost') {
          this.stats.boosted += 1;
          const edge = this.fromEdge(url, signal);
          const first = await Promise.race([edge.then((d) => ['edge', d]), transfer.then((d) => ['peer', d], () => edge.then((d) => ['edge', d]))]);
          if (first[0] === 'edge') {
            transfer.cancel();
            swarm.keep(uri, first[1]);
            return first[1];
          }
          edge.catch(() => {});
          got = first[1];
        }
        let ok = false;
        try {
          ok = await swarm.verify(uri, got);
        } catch (err) {
          this.note(`cannot check ${uri}: ${err.message}`);
          break;
        }
        if (ok) {
          this.stats.peerBytes += got.byteLength;
          this.stats.piecesFromPeers += 1;
          swarm.keep(uri, got);
          return got;
        }
        // A lie: the bytes never reach the player; the peer is dropped and reported.
        this.stats.badPieces += 1;
        this.note(`bad piece ${uri} from peer ${peer.id}: digest mismatch`);
        swarm.banned.add(peer.id);
        swarm.track({ t: 'report', peer: peer.id, reason: `digest mismatch on ${uri}` });
        peer.close('sent a piece that does not match the signed digest');
        peer = swarm.bestHolder(uri);
      }
      const data = await this.fromEdge(url, signal);
      swarm.keep(uri, data);
      return data;
    }

    async beacon() {
      const q = this.qoe ? this.qoe() : null;
      const report = {
        peer_bytes: this.stats.peerBytes - this.sent.peer,
        edge_bytes: this.stats.edgeBytes - this.sent.edge,
        peers: this.stats.peers,
      };
      if (q) {
        report.played_ms = Math.max(0, Math.round(q.playedMs - this.sent.played));
        report.rebuffer_ms = Math.max(0, Math.round(q.rebufferMs - this.sent.rebuffer));
        if (!this.sent.startup && q.startupMs !== null) report.startup_ms = Math.round(q.startupMs);
      }
      const url = new URL(`/p2p/${this.channel}/beacon`, this.base || location.origin);
      if (this.token) url.searchParams.set('token', this.token);
      try {
        const res = await fetch(url, { method: 'POST', body: JSON.stringify(report), headers: { 'content-type': 'application/json' } });
        if (res.ok) {
          this.sent.peer += report.peer_bytes;
          this.sent.edge += report.edge_bytes;
          if (q) {
            this.sent.played += report.played_ms;
            this.sent.rebuffer += report.rebuffer_ms;
            if (report.startup_ms !== undefined) this.sent.startup = true;
          }
        }
      } catch { /* the next report carries it */ }
    }

    destroy() {
      clearInterval(this.beaconTimer);
      for (const s of this.swarms.values()) s.close();
      this.swarms.clear();
    }
  }

  // An hls.js fragment loader that hands whole media segments to `agent`.
  function loader(Hls, agent) {
    const Base = Hls.DefaultConfig.loader;
    return class P2PLoader extends Base {
      load(context, config, callbacks) {
        const frag = context.frag;
        const ours = frag && frag.sn !== 'initSegment' && !context.part && agent.claim(context.url);
        if (!ours) {
          super.load(context, config, callbacks);
          return;
        }
        this.context = context;
        this.callbacks = callbacks;
        this.controller = new AbortController();
        const stats = this.stats;
        stats.loading.start = performance.now();
        const video = agent.video;
        const dueIn = video && video.readyState > 0 && !video.paused ? frag.start - video.currentTime : 0;
        agent.load(context.url, dueIn, this.controller.signal).then((data) => {
          if (!this.callbacks) return;
          const now = performance.now();
          stats.loading.first = Math.max(stats.loading.start, now - 1);
          stats.loading.end = now;
          stats.loaded = data.byteLength;
          stats.total = data.byteLength;
          const cb = this.callbacks;
          this.callbacks = null;
          cb.onSuccess({ url: context.url, data, code: 200 }, stats, context, null);
        }, (err) => {
          if (!this.callbacks || this.stats.aborted) return;
          const cb = this.callbacks;
          this.callbacks = null;
          cb.onError({ code: err.status || 0, text: err.message }, context, null, stats);
        });
      }

      abort() {
        if (this.controller) this.controller.abort();
        // The base calls onAbort; after that nothing more is said of this request.
        super.abort();
        this.callbacks = null;
      }

      destroy() {
        if (this.controller) this.controller.abort();
        super.destroy();
      }
    };
  }

  window.StarlingP2P = { Agent, loader, pieceUri, parseUri, encode, decode };
})();
