// 1 Prompt: pick a source (a shipped loop, an upload, a take), see it as a piano roll, drag
// to select the fragment that primes the model, hear the fragment.

import { get, post, upload, say, note, fmtTime, fmtBytes } from "./api.js";
import { Roll } from "./roll.js";
import { AudioFeed, player } from "./audio.js";

const $ = (id) => document.getElementById(id);

export class Prompt {
  constructor(app) {
    this.app = app;
    this.key = null;
    this.subtune = null;
    this.chip = "6581";
    this.roll = new Roll($("source-roll"), { zoomable: true, onSelect: (s) => this._selected(s), onPoint: () => {} });
    this._wire();
  }

  async loadSources(select = null) {
    const list = await get("/api/sources");
    const sel = $("source-select");
    const keep = select || sel.value;
    sel.replaceChildren();
    const none = new Option("none: start from silence", "");
    sel.append(none);
    const groups = { loop: "shipped and your loops", sid: "uploads", frames: "uploads", take: "takes" };
    const made = {};
    for (const s of list.concat(this.app.takeSources)) {
      const label = groups[s.kind];
      if (!made[label]) { made[label] = document.createElement("optgroup"); made[label].label = label; sel.append(made[label]); }
      const o = new Option(s.kind === "loop" ? `${s.name} (${s.seconds} s)` : s.name, s.key);
      o.dataset.songs = s.songs;
      o.dataset.start = s.start_song;
      made[label].append(o);
    }
    this.sources = list;
    const want = keep && [...sel.options].some((o) => o.value === keep) ? keep : (list[0] ? list[0].key : "");
    sel.value = want;
    await this.pick(want);
  }

  async pick(key, subtune = null) {
    this.key = key || null;
    const opt = $("source-select").selectedOptions[0];
    const songs = opt ? +(opt.dataset.songs || 1) : 1;
    const sub = $("subtune-select");
    $("subtune-label").hidden = songs <= 1;
    if (songs > 1) {
      if (sub.options.length !== songs || sub.dataset.key !== key) {
        sub.replaceChildren(...Array.from({ length: songs }, (_, i) => new Option(`${i + 1} of ${songs}`, String(i + 1))));
        sub.dataset.key = key;
      }
      sub.value = String(subtune ?? +opt.dataset.start ?? 1);
    }
    this.subtune = songs > 1 ? +sub.value : null;
    if (!this.key) {
      this.roll.data = null;
      this.roll.draw();
      $("source-info").textContent = "no prompt: the model starts from one silent frame";
      $("source-info").className = "dim";
      $("selection-info").textContent = "";
      this.selection = null;
      return;
    }
    $("source-busy").hidden = false;
    const mine = (this._seq = (this._seq || 0) + 1);   // a later pick wins over a slower earlier one
    try {
      const q = new URLSearchParams({ key: this.key });
      if (this.subtune) q.set("subtune", String(this.subtune));
      const roll = await get(`/api/sources/roll?${q}`);
      if (mine !== this._seq) return;
      this.chip = roll.chip;
      this.roll.setData(roll);
      const status = roll.status && roll.status !== "ok" ? ` · dump stopped: ${roll.status}` : "";
      $("source-info").className = "dim";
      $("source-info").textContent = `${roll.title || this.key}${roll.author ? " · " + roll.author : ""} · ` +
        `${roll.seconds} s · ${roll.chip}${status}`;
      const n = roll.frames, rate = roll.frame_rate_hz;
      this.roll.selection = [0, n <= Math.round(16 * rate) ? n : Math.round(8 * rate)];
      this._selected(this.roll.selection);
    } catch (e) {
      if (mine !== this._seq) return;
      this.roll.data = null;
      this.roll.draw();
      this.selection = null;
      $("source-info").textContent = `no frames: ${e.message}`;
      $("source-info").className = "bad";
      $("selection-info").textContent = "";
      say(e.message);
    } finally {
      if (mine === this._seq) $("source-busy").hidden = true;
    }
  }

  _selected(sel) {
    this.selection = sel;
    this.roll.selection = sel;
    this.roll.draw();
    const r = this.roll.rate;
    $("selection-info").textContent =
      `prompt ${fmtTime(sel[0] / r)}–${fmtTime(sel[1] / r)} (${((sel[1] - sel[0]) / r).toFixed(2)} s, ${sel[1] - sel[0]} frames)`;
  }

  // The prompt part of a take request.
  request() {
    if (!this.key || !this.selection) return { source: null };
    return { source: this.key, subtune: this.subtune, start: this.selection[0], end: this.selection[1] };
  }

  async uploadFile(file) {
    const lim = this.app.state.limits;
    const ext = file.name.toLowerCase().slice(file.name.lastIndexOf("."));
    if (![".sid", ".regs", ".txt"].includes(ext)) {
      say(`${file.name}: the studio reads .sid, .regs and .txt files, not ${ext || "files without an extension"}`);
      return;
    }
    const max = ext === ".sid" ? lim.sid_bytes : lim.upload_bytes;
    if (file.size > max) {
      say(`${file.name}: ${fmtBytes(file.size)} bytes is over the limit for ${ext === ".sid" ? "a .sid" : "an upload"}: ` +
        `${fmtBytes(max)} bytes; nothing was uploaded`);
      return;
    }
    $("source-busy").hidden = false;
    $("source-busy").textContent = "uploading…";
    try {
      const s = await upload(file);
      note(`${s.name}: ${s.kind === "sid" ? `${s.title || "untitled"} by ${s.author || "?"}, ${s.songs} subtune(s)` : "frames"}`);
      await this.loadSources(s.key);
    } catch (e) {
      say(e.message);
    } finally {
      $("source-busy").textContent = "dumping…";
      $("source-busy").hidden = true;
    }
  }

  async playFragment() {
    if (!this.key || !this.selection) { say("pick a source and select a fragment first"); return; }
    try {
      const r = await post("/api/preview", { ...this.request(), chip: $("chip").value || null });
      const feed = new AudioFeed(r.key);
      const startFrame = this.selection[0];
      this.app.playingPrompt = true;
      player.play(feed, 0, () => { this.roll.playhead = null; this.roll.draw(); this.app.playingPrompt = false; });
      this.previewStart = startFrame;
      player.onStall = (err) => say(`fragment: ${err}`);
    } catch (e) {
      say(e.message);
    }
  }

  tick() {
    const pos = player.position();
    if (pos === null) return;
    this.roll.playhead = this.previewStart + (pos / 48000) * this.roll.rate;
    this.roll.draw();
  }

  _wire() {
    $("source-select").onchange = (e) => this.pick(e.target.value);
    $("subtune-select").onchange = (e) => this.pick(this.key, +e.target.value);
    $("upload").onchange = (e) => { const f = e.target.files[0]; e.target.value = ""; if (f) this.uploadFile(f); };
    $("play-fragment").onclick = () => this.playFragment();
    $("stop-audio").onclick = () => player.stop();
    $("zoom-fit").onclick = () => this.roll.fit();
    const voices = $("source-voices");
    for (const v of [1, 2, 3]) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.onchange = () => { box.checked ? this.roll.hidden.delete(v - 1) : this.roll.hidden.add(v - 1); this.roll.draw(); };
      label.append(box, ` V${v}`);
      voices.append(label);
    }
  }
}
