// The piano roll: three SID voices from their frequency registers (pitch at the PAL clock,
// computed by the server), coloured by waveform; a gated note is a full bar, its release
// tail after the gate goes off a thin faint one; the filter cutoff is a line (solid where a
// voice goes through the filter); noise-only notes are hits in a lane at the bottom. Drag
// selects a range of frames, a click sets a point.

const WAVE_COLOURS = { 1: "#5ccf6b", 2: "#ff9f43", 4: "#4aa3ff", 8: "#c8c8c8" };
const MIXED = "#c77dff";
const VOICE_TICKS = ["#ffffff", "#ffe14d", "#ff6fb5"];
const NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

export function noteName(centi) {
  const n = Math.round(centi / 100);
  return `${NOTE_NAMES[((n % 12) + 12) % 12]}${Math.floor(n / 12) - 1}`;
}

export class Roll {
  constructor(canvas, { onSelect = null, onPoint = null, zoomable = false } = {}) {
    this.canvas = canvas;
    this.onSelect = onSelect;
    this.onPoint = onPoint;
    this.zoomable = zoomable;
    this.data = null;          // {voices:[{pitch,wave,gate,level,onsets}], cutoff, route, frames}
    this.total = 0;            // frames the run will have (a take being made: more than the data)
    this.rate = 50.1245;
    this.view = [0, 1];        // frames shown
    this.selection = null;     // [a, b) frames
    this.point = null;
    this.playhead = null;
    this.marks = [];           // frames to mark (continue/branch point)
    this.hidden = new Set();   // voices not drawn (0..2)
    this._drag = null;
    this._bind();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setData(roll, total = null) {
    this.data = roll;
    this.rate = roll.frame_rate_hz || this.rate;
    this.total = Math.max(total ?? roll.frames, roll.frames, 1);
    this.view = [0, this.total];
    this._range();
    this.draw();
  }

  // Append a piece (frames start.. of the same run) while a take is being made.
  append(piece, total) {
    if (!this.data || piece.start === 0) return this.setData(piece, total);
    if (piece.start !== this.data.frames) return;
    const d = this.data;
    d.voices.forEach((v, i) => {
      for (const k of ["pitch", "wave", "gate", "level"]) v[k] = v[k].concat(piece.voices[i][k]);
      v.onsets = v.onsets.concat(piece.voices[i].onsets);
    });
    for (const k of ["cutoff", "route", "resonance", "mode"]) d[k] = d[k].concat(piece[k]);
    d.frames += piece.frames;
    if (total) this.total = total;
    this.view[1] = Math.max(this.view[1], this.total);
    this._range();
    this.draw();
  }

  get frames() { return this.data ? this.data.frames : 0; }

  // The pitch range shown: the 2nd..98th percentile of the gated, pitched (not noise-only)
  // frames, two semitones of room, at least two octaves; noise gets its own lane at the bottom.
  _range() {
    const ps = [];
    for (const v of this.data.voices) {
      for (let t = 0; t < v.pitch.length; t++) {
        if (v.pitch[t] >= 0 && v.wave[t] && v.wave[t] !== 8 && (v.gate[t] || v.level[t])) ps.push(v.pitch[t]);
      }
    }
    let lo = 4800, hi = 7200;
    if (ps.length) {
      ps.sort((a, b) => a - b);
      lo = ps[Math.floor(ps.length * 0.02)];
      hi = ps[Math.min(ps.length - 1, Math.floor(ps.length * 0.98))];
    }
    lo = Math.floor(lo / 100) - 2; hi = Math.ceil(hi / 100) + 2;
    const span = Math.max(24, hi - lo);
    const mid = (lo + hi) / 2;
    this.noteLo = Math.max(0, Math.round(mid - span / 2));
    this.noteHi = this.noteLo + span;
  }

  fit() { this.view = [0, this.total]; this.draw(); }

  xOf(frame, w) { return (frame - this.view[0]) / (this.view[1] - this.view[0]) * w; }
  frameAt(clientX) {
    const r = this.canvas.getBoundingClientRect();
    const f = this.view[0] + (clientX - r.left) / r.width * (this.view[1] - this.view[0]);
    return Math.max(0, Math.min(this.total, Math.round(f)));
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(c.clientWidth * dpr)), H = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    const g = c.getContext("2d");
    g.fillStyle = "#0c0d10";
    g.fillRect(0, 0, W, H);
    if (!this.data) return;
    const ruler = 14 * dpr, lane = Math.round(Math.max(8 * dpr, H * 0.08)), h = H - ruler - lane;
    const span = this.noteHi - this.noteLo, rowH = h / span;
    const yOf = (centi) => Math.min(h - 1, Math.max(1, h - (centi / 100 - this.noteLo) / span * h));
    // octave lines (C), labelled where there is room; the noise lane below
    g.font = `${10 * dpr}px monospace`;
    for (let n = Math.ceil(this.noteLo / 12) * 12; n <= this.noteHi; n += 12) {
      const y = yOf(n * 100);
      g.fillStyle = "#1b1e25"; g.fillRect(0, y, W, 1);
      if (12 * rowH >= 13 * dpr) { g.fillStyle = "#4b5262"; g.fillText(noteName(n * 100), 3 * dpr, y - 2 * dpr); }
    }
    g.fillStyle = "#13151a"; g.fillRect(0, h, W, lane);
    g.fillStyle = "#262a33"; g.fillRect(0, h, W, 1);
    // frames not made yet
    if (this.data.frames < this.total) {
      const x0 = this.xOf(this.data.frames, W);
      g.fillStyle = "rgba(255,209,102,0.05)"; g.fillRect(x0, 0, W - x0, h);
    }
    const [v0, v1] = this.view, fw = W / (v1 - v0);
    const t0 = Math.max(0, Math.floor(v0)), t1 = Math.min(this.data.frames, Math.ceil(v1));
    this.data.voices.forEach((v, i) => {
      if (this.hidden.has(i)) return;
      for (let t = t0; t < t1; t++) {
        const w = v.wave[t], p = v.pitch[t];
        if (!w || p < 0) continue;
        const gate = v.gate[t], lev = v.level[t] / 15;
        if (!gate && lev <= 0) continue;
        g.fillStyle = WAVE_COLOURS[w] || MIXED;
        g.globalAlpha = gate ? 0.5 + 0.5 * lev : 0.12 + 0.35 * lev;
        if (w === 8) {                                  // noise: a hit in the lane, its height the level
          const bh = Math.max(dpr, (lane - 2 * dpr) * Math.max(lev, gate ? 0.4 : 0));
          g.fillRect((t - v0) * fw, h + lane - dpr - bh, Math.max(fw, 1), bh);
          continue;
        }
        if (p < this.noteLo * 100 || p > this.noteHi * 100) {   // outside the range: a faint mark at the edge
          g.globalAlpha *= 0.3;
          g.fillRect((t - v0) * fw, p > this.noteHi * 100 ? 0 : h - 2 * dpr, Math.max(fw, 1), 2 * dpr);
          continue;
        }
        const bh = Math.max(2 * dpr, gate ? rowH * 0.9 : rowH * 0.35);
        g.fillRect((t - v0) * fw, yOf(p) - bh / 2, Math.max(fw, 1), bh);
      }
      g.globalAlpha = 1;
      g.fillStyle = VOICE_TICKS[i];
      for (const t of v.onsets) {
        const p = v.pitch[t];
        if (t < t0 || t >= t1 || !v.wave[t] || v.wave[t] === 8 || p < this.noteLo * 100 || p > this.noteHi * 100) continue;
        g.fillRect((t - v0) * fw, yOf(v.pitch[t]) - rowH * 0.45, Math.max(1, dpr), Math.max(3 * dpr, rowH * 0.9));
      }
    });
    // filter cutoff: solid where a voice is routed through the filter
    g.lineWidth = dpr;
    for (const routed of [false, true]) {
      g.strokeStyle = routed ? "rgba(255,255,255,0.6)" : "rgba(255,255,255,0.2)";
      g.setLineDash(routed ? [] : [3 * dpr, 3 * dpr]);
      g.beginPath();
      let pen = false;
      for (let t = t0; t < t1; t++) {
        if ((this.data.route[t] !== 0) !== routed) { pen = false; continue; }
        const x = (t - v0) * fw, y = h - this.data.cutoff[t] / 2047 * (h - 4 * dpr) - 2 * dpr;
        if (pen) g.lineTo(x, y); else { g.moveTo(x, y); pen = true; }
        g.lineTo(x + fw, y);
      }
      g.stroke();
    }
    g.setLineDash([]);
    this._overlays(g, W, h + lane, dpr);
    this._ruler(g, W, H, ruler, dpr);
  }

  _overlays(g, W, h, dpr) {
    if (this.selection) {
      const [a, b] = this.selection, xa = this.xOf(a, W), xb = this.xOf(b, W);
      g.fillStyle = "rgba(255,209,102,0.16)"; g.fillRect(xa, 0, xb - xa, h);
      g.fillStyle = "#ffd166"; g.fillRect(xa, 0, dpr, h); g.fillRect(xb - dpr, 0, dpr, h);
    }
    for (const m of this.marks) {
      g.fillStyle = "rgba(124,196,255,0.7)"; g.fillRect(this.xOf(m, W), 0, dpr, h);
    }
    if (this.point !== null) {
      const x = this.xOf(this.point, W);
      g.fillStyle = "#ff6b6b"; g.fillRect(x - dpr, 0, 2 * dpr, h);
      g.beginPath(); g.moveTo(x - 5 * dpr, 0); g.lineTo(x + 5 * dpr, 0); g.lineTo(x, 7 * dpr); g.fill();
    }
    if (this.playhead !== null) {
      g.fillStyle = "#7cc4ff"; g.fillRect(this.xOf(this.playhead, W), 0, 2 * dpr, h);
    }
  }

  _ruler(g, W, H, ruler, dpr) {
    g.fillStyle = "#14161b"; g.fillRect(0, H - ruler, W, ruler);
    const secs = (this.view[1] - this.view[0]) / this.rate;
    const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120].find((s) => secs / s <= W / (60 * dpr)) || 300;
    g.fillStyle = "#6b7282"; g.font = `${10 * dpr}px monospace`;
    for (let s = Math.ceil(this.view[0] / this.rate / step) * step; s * this.rate <= this.view[1]; s += step) {
      const x = this.xOf(s * this.rate, W);
      g.fillRect(x, H - ruler, dpr, 4 * dpr);
      g.fillText(s >= 60 ? `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}` : `${s}s`,
        x + 2 * dpr, H - 3 * dpr);
    }
  }

  _bind() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => {
      if (!this.data || e.button !== 0) return;
      c.setPointerCapture(e.pointerId);
      this._drag = { x: e.clientX, f: this.frameAt(e.clientX), moved: false };
    });
    c.addEventListener("pointermove", (e) => {
      const d = this._drag;
      if (!d) return;
      if (Math.abs(e.clientX - d.x) > 3) d.moved = true;
      if (d.moved) {
        const f = this.frameAt(e.clientX);
        this.selection = [Math.min(d.f, f), Math.max(d.f, f)];
        this.draw();
      }
    });
    c.addEventListener("pointerup", (e) => {
      const d = this._drag;
      this._drag = null;
      if (!d) return;
      if (d.moved && this.selection && this.selection[1] > this.selection[0]) {
        this.onSelect && this.onSelect(this.selection);
      } else if (!d.moved) {
        this.point = Math.min(this.frameAt(e.clientX), Math.max(0, this.frames - 1));
        this.draw();
        this.onPoint && this.onPoint(this.point);
      }
    });
    if (this.zoomable) {
      c.addEventListener("wheel", (e) => {
        if (!this.data) return;
        e.preventDefault();
        const [v0, v1] = this.view, width = v1 - v0;
        if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
          const shift = (e.deltaX || e.deltaY) / 500 * width;
          const a = Math.max(0, Math.min(this.total - width, v0 + shift));
          this.view = [a, a + width];
        } else {
          const f = this.frameAt(e.clientX), k = Math.exp(e.deltaY / 400);
          const nw = Math.max(25, Math.min(this.total, width * k));
          let a = f - (f - v0) * nw / width;
          a = Math.max(0, Math.min(this.total - nw, a));
          this.view = [a, a + nw];
        }
        this.draw();
      }, { passive: false });
    }
  }
}
