// A take as a card: its piano roll (growing while the take is made), a player, its exact
// settings, and what can be done with it (variations, continue, branch, prompt, live,
// exports, verify, regenerate, rename, star, delete).

import { get, post, send, say, note, fmtTime } from "./api.js";
import { Roll } from "./roll.js";
import { AudioFeed, player } from "./audio.js";

const FRAME_RATE = 50.1245;
const SAMPLE_RATE = 48000;

export class Card {
  constructor(take, app) {
    this.app = app;
    this.id = take.id;
    this.el = document.getElementById("card-template").content.firstElementChild.cloneNode(true);
    this.el.dataset.take = String(take.id);
    this.q = (sel) => this.el.querySelector(sel);
    this.roll = new Roll(this.q("canvas"), {
      onPoint: (f) => this._point(f),
      onSelect: (sel) => { this.q(".point").textContent = `selected ${fmtTime(sel[0] / FRAME_RATE)}–${fmtTime(sel[1] / FRAME_RATE)}`; },
    });
    this.feed = null;
    this.rollBusy = false;
    this._wire();
    this.update(take);
  }

  update(take) {
    const was = this.take;
    this.take = take;
    const remade = was && was.status !== take.status && ["queued", "running"].includes(take.status);
    if (remade && this.app.playing !== this) {            // made again from its recipe: fresh audio and roll
      this.feed = null;
      this.roll.data = null;
      this.roll.draw();
    }
    const el = this.el;
    el.classList.toggle("failed", take.status === "failed");
    el.classList.toggle("interrupted", take.status === "interrupted");
    const name = this.q(".name");
    if (!name.querySelector("input")) name.textContent = take.name;
    const star = this.q(".star");
    star.textContent = take.starred ? "★" : "☆";
    star.classList.toggle("on", take.starred);
    const badge = this.q(".badge");
    badge.textContent = take.status;
    badge.className = `badge ${take.status}`;
    this.q(".seed").textContent = `seed ${take.seed}`;
    const s = take.settings;
    const keep = take.keep_voices.length ? ` · keeps voice ${take.keep_voices.join("+")}` : "";
    const timing = take.engine_s != null ? ` · engine ${take.engine_s.toFixed(2)} s, render ${take.render_s.toFixed(2)} s` : "";
    this.q(".settings").textContent =
      `${(take.total_frames / FRAME_RATE).toFixed(1)} s · T ${s.temperature} · k ${s.top_k} · p ${s.top_p} · rep ${s.repetition}` +
      ` · ${s.composer} · ${s.chip} · ${take.model_name} (${s.model_digest.slice(0, 8)})` +
      ` · prompt ${take.source || "none"} (${s.prompt_frames} frames)${keep}` +
      (take.kind !== "new" ? ` · ${take.kind} of #${take.parent ?? take.group_id}` : "") + timing;
    const done = take.status === "done";
    for (const sel of [".act-cont", ".act-prompt", ".act-live", ".act-verify"]) this.q(sel).disabled = !done;
    this.q(".act-branch").disabled = !done || this.roll.point === null;
    this.q(".act-regen").hidden = !(take.status === "interrupted" || take.status === "failed");
    this.q(".exports").style.visibility = done ? "visible" : "hidden";
    const msg = this.q(".card-msg");
    if (take.error) { msg.textContent = take.error; msg.className = "card-msg bad"; }
    else if (msg.classList.contains("bad")) { msg.textContent = ""; msg.className = "card-msg"; }
    if (take.head_frames) this.roll.marks = [take.head_frames];
    if (done && (!was || was.status !== "done" || this.roll.frames < take.total_frames)) this.loadRoll();
    if (done) this.q(".progress div").style.width = "0";
  }

  progress(job) {
    const bar = this.q(".progress div");
    bar.style.width = `${(100 * job.frames_done) / Math.max(1, job.total_frames)}%`;
    const badge = this.q(".badge");
    badge.textContent = job.state === "queued" ? (job.ahead ? `waiting: ${job.ahead} ahead` : "queued")
      : `${job.frames_done}/${job.total_frames}`;
    badge.className = `badge ${job.state}`;
    if (job.frames_done > this.roll.frames) this.loadRoll();
    if (this.app.autoplay.has(this.id) && job.samples_ready > 0) {
      this.app.autoplay.delete(this.id);
      this.play(0);
    }
  }

  async loadRoll() {
    if (this.rollBusy) return;
    this.rollBusy = true;
    try {
      const piece = await get(`/api/takes/${this.id}/roll?from=${this.roll.frames}`);
      if (piece.frames > 0 || !this.roll.data) this.roll.append(piece, piece.total_frames);
    } catch (e) {
      if (this.take.status === "done") say(`take ${this.id}: ${e.message}`);
    } finally {
      this.rollBusy = false;
    }
    if (this.take.status === "done" && this.roll.frames < this.take.total_frames) this.loadRoll();
  }

  play(fromFrame = null) {
    if (!this.feed || this.feed.error) this.feed = new AudioFeed(`take-${this.id}`);
    const start = fromFrame ?? this.roll.point ?? 0;
    this.app.playing = this;
    this.el.classList.add("playing");
    this.q(".play").textContent = "■";
    player.play(this.feed, Math.round((start / FRAME_RATE) * SAMPLE_RATE), () => {
      this.el.classList.remove("playing");
      this.q(".play").textContent = "▶";
      this.roll.playhead = null;
      this.roll.draw();
      if (this.app.playing === this) this.app.playing = null;
    });
    player.onStall = (err) => say(`take ${this.id}: audio: ${err}`);
  }

  tick() {
    const pos = player.position();
    if (pos === null) return;
    this.roll.playhead = (pos / SAMPLE_RATE) * FRAME_RATE;
    this.q(".time").textContent = fmtTime(pos / SAMPLE_RATE);
    this.roll.draw();
  }

  _point(f) {
    this.q(".point").textContent = `point ${fmtTime(f / FRAME_RATE)}`;
    this.q(".act-branch").disabled = this.take.status !== "done";
    if (this.app.playing === this) this.play(f);
  }

  async _do(label, fn) {
    const msg = this.q(".card-msg");
    try {
      const r = await fn();
      return r;
    } catch (e) {
      msg.textContent = `${label}: ${e.message}`;
      msg.className = "card-msg bad";
      say(`take ${this.id}: ${label}: ${e.message}`);
      return null;
    }
  }

  _wire() {
    const q = this.q;
    q(".play").onclick = () => (this.app.playing === this ? player.stop() : this.play());
    q(".star").onclick = () => this._do("star", async () => {
      this.update(await send("PATCH", `/api/takes/${this.id}`, { starred: !this.take.starred }));
      this.app.refreshSoon();
    });
    q(".name").onclick = () => {
      const name = q(".name");
      if (name.querySelector("input")) return;
      const input = document.createElement("input");
      input.value = this.take.name;
      name.replaceChildren(input);
      input.focus();
      input.select();
      const finish = async (save) => {
        if (!input.isConnected) return;
        name.textContent = this.take.name;
        if (save && input.value.trim() && input.value !== this.take.name) {
          await this._do("rename", async () => this.update(await send("PATCH", `/api/takes/${this.id}`, { name: input.value })));
        }
      };
      input.onkeydown = (e) => { if (e.key === "Enter") finish(true); if (e.key === "Escape") finish(false); };
      input.onblur = () => finish(true);
    };
    q(".act-var").onclick = () => this.app.makeTakes({ kind: "variation", take: this.id });
    q(".act-cont").onclick = () => this.app.makeTakes({ kind: "continue", take: this.id, length_s: this.app.lengthS() });
    q(".act-branch").onclick = () => this.app.makeTakes({ kind: "branch", take: this.id, at: this.roll.point });
    q(".act-regen").onclick = () => this.app.makeTakes({ kind: "regenerate", take: this.id });
    q(".act-prompt").onclick = () => this.app.useAsPrompt(`take:${this.id}`, this.take.name);
    q(".act-live").onclick = () => this._do("send to live", async () => {
      const sel = this.roll.selection || [0, this.take.total_frames];
      const r = await post("/api/live/loop", { take: this.id, start: sel[0], end: sel[1] });
      note(`loop ${r.name} (${r.seconds} s) written to ${r.path}; selecting it as loop ${r.index} on ${r.host}:${r.port}`);
      this.app.liveLog(`loop ${r.name} → /sidlive/loop ${r.index}`);
    });
    q(".act-verify").onclick = () => this._do("verify", async () => {
      const msg = q(".card-msg");
      msg.textContent = "remaking the frames from the recipe…";
      msg.className = "card-msg";
      const r = await post(`/api/takes/${this.id}/verify`);
      msg.textContent = r.identical ? `identical: all ${r.frames} frames remade bit for bit (${r.engine_s} s)`
        : `differs: ${r.frames_differing ?? "all"} of ${r.frames} frames`;
      msg.className = `card-msg ${r.identical ? "good" : "bad"}`;
    });
    q(".act-del").onclick = () => this._do("delete", async () => {
      if (!confirm(`Delete take ${this.id} "${this.take.name}"?`)) return;
      if (this.app.playing === this) player.stop();
      await send("DELETE", `/api/takes/${this.id}`);
      this.app.refreshSoon();
    });
    for (const a of this.el.querySelectorAll(".exports a")) {
      a.href = `/api/takes/${this.id}/export/${a.dataset.fmt}`;
      a.setAttribute("download", "");
      a.onclick = async (e) => {       // fetch first: a refused export shows its message here
        e.preventDefault();
        await this._do(`export ${a.dataset.fmt}`, async () => {
          const r = await fetch(a.href);
          if (!r.ok) throw new Error((await r.json()).error);
          const blob = await r.blob();
          const name = (r.headers.get("content-disposition") || "").match(/filename="(.+)"/);
          const link = document.createElement("a");
          link.href = URL.createObjectURL(blob);
          link.download = name ? name[1] : `take-${this.id}.${a.dataset.fmt}`;
          document.body.append(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(link.href), 10000);
        });
      };
    }
  }
}
