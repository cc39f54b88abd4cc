// Sound in the page: WebAudio. An AudioFeed fetches a take's or a preview's 16-bit samples
// from the server as they are rendered (/api/audio/KEY?from=N answers with what is ready),
// the Player schedules them back to back on one AudioContext, from any point, also while
// more are still coming. Each feed counts its transfer time (fetch) and its decode time
// (int16 to float, into AudioBuffers): the page's half of the "playable" figure.

let ctx = null;
let out = null;

export function audioContext() {
  if (!ctx) {
    ctx = new AudioContext({ sampleRate: 48000, latencyHint: "playback" });
    out = ctx.createGain();
    out.gain.value = 0.8;
    out.connect(ctx.destination);
  }
  if (ctx.state === "suspended") ctx.resume();
  return ctx;
}

export class AudioFeed {
  constructor(key) {
    this.key = key;
    this.chunks = [];          // {start, buffer: AudioBuffer}
    this.ready = 0;
    this.total = null;
    this.rate = 48000;
    this.done = false;
    this.error = "";
    this.stats = { fetches: 0, transfer_ms: 0, decode_ms: 0, bytes: 0, first_chunk_at: null, done_at: null };
    this.listeners = new Set();
    this._loading = null;
  }

  load() {
    if (!this._loading) this._loading = this._run();
    return this._loading;
  }

  async _run() {
    const ac = audioContext();
    while (!this.done && !this.error) {
      const t0 = performance.now();
      let r, buf;
      try {
        r = await fetch(`/api/audio/${this.key}?from=${this.ready}`, { cache: "no-store" });
        if (!r.ok) {
          const body = await r.json().catch(() => ({}));
          throw new Error(body.error || `${r.status} ${r.statusText}`);
        }
        buf = await r.arrayBuffer();
      } catch (e) {
        this.error = String(e.message || e);
        break;
      }
      const t1 = performance.now();
      this.stats.fetches += 1;
      this.stats.transfer_ms += t1 - t0;
      this.stats.bytes += buf.byteLength;
      this.total = +r.headers.get("X-Total");
      this.rate = +r.headers.get("X-Rate") || this.rate;
      const n = buf.byteLength >> 1;
      if (n > 0) {
        const pcm = new Int16Array(buf, 0, n);
        const ab = ac.createBuffer(1, n, this.rate);
        const ch = ab.getChannelData(0);
        for (let i = 0; i < n; i++) ch[i] = pcm[i] / 32768;
        this.chunks.push({ start: this.ready, buffer: ab });
        this.ready += n;
        this.stats.decode_ms += performance.now() - t1;
        if (this.stats.first_chunk_at === null) this.stats.first_chunk_at = performance.now();
      }
      this.done = r.headers.get("X-Done") === "1" && this.ready >= this.total;
      const err = r.headers.get("X-Error");
      if (err && !this.done && n === 0) this.error = err;
      this.listeners.forEach((f) => f(this));
    }
    if (this.done) this.stats.done_at = performance.now();
    this.listeners.forEach((f) => f(this));
  }
}

export class Player {
  constructor() {
    this.feed = null;
    this.nodes = [];
    this.onEnd = null;
    this.onStall = null;
    this._listener = () => this._schedule();
  }

  get playing() { return this.feed !== null; }

  play(feed, fromSample = 0, onEnd = null) {
    this.stop();
    const ac = audioContext();
    this.feed = feed;
    this.onEnd = onEnd;
    this.from = fromSample;
    this.t0 = ac.currentTime + 0.06;
    this.upTo = fromSample;
    feed.listeners.add(this._listener);
    feed.load();
    this._schedule();
    this._tick();
  }

  stop() {
    if (this.feed) this.feed.listeners.delete(this._listener);
    for (const n of this.nodes) { try { n.stop(); } catch (e) { /* already ended */ } n.disconnect(); }
    this.nodes = [];
    const end = this.onEnd;
    this.feed = null;
    this.onEnd = null;
    if (end) end();
  }

  // The sample now playing (the feed's samples), or null.
  position() {
    if (!this.feed) return null;
    return Math.max(this.from, Math.min(this.upTo, this.from + (ctx.currentTime - this.t0) * this.feed.rate));
  }

  _schedule() {
    const f = this.feed;
    if (!f) return;
    const ac = audioContext();
    for (const c of f.chunks) {
      const end = c.start + c.buffer.length;
      if (end <= this.upTo) continue;
      const offset = Math.max(0, this.upTo - c.start);
      let when = this.t0 + (c.start + offset - this.from) / f.rate;
      if (when < ac.currentTime + 0.01) {          // the samples came late: pick up from now
        this.t0 += ac.currentTime + 0.03 - when;
        when = ac.currentTime + 0.03;
      }
      const node = ac.createBufferSource();
      node.buffer = c.buffer;
      node.connect(out);
      node.start(when, offset / f.rate);
      this.nodes.push(node);
      this.upTo = end;
    }
    if (f.error && this.onStall) this.onStall(f.error);
  }

  _tick() {
    if (!this.feed) return;
    const f = this.feed;
    if ((f.done || f.error) && this.position() >= this.upTo - 1) { this.stop(); return; }
    requestAnimationFrame(() => this._tick());
  }
}

export const player = new Player();
