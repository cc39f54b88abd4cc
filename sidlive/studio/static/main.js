// The studio page: state from the server, the Steer panel, the takes (grouped; variations
// side by side), the long poll that follows the work queue, and the figures the page measures
// (window.studioFigures: click to first audio, transfer and decode times per take).

import { get, post, say, note } from "./api.js";
import { Card } from "./cards.js";
import { Prompt } from "./prompt.js";
import { Live } from "./live.js";
import { AudioFeed, audioContext, player } from "./audio.js";

const $ = (id) => document.getElementById(id);
const SLIDERS = { temperature: 0.01, top_k: 1, top_p: 0.01, repetition: 0.01 };

class App {
  constructor() {
    this.cards = new Map();
    this.autoplay = new Set();
    this.clicks = new Map();
    this.takeSources = [];
    this.playing = null;
    this.version = -1;
    this.prompt = new Prompt(this);
    this.live = new Live(this);
    window.studioFigures = {};
    window.studio = this;
    window.studioAudio = { AudioFeed, player };
  }

  async start() {
    await this.loadState();
    this.wireSteer();
    this.live.init(this.state.instrument);
    await this.refresh();
    await this.prompt.loadSources();
    if (this.state.interrupted.length) {
      say(`the studio stopped while making take ${this.state.interrupted.join(", ")}: ` +
        "the library is intact; regenerate from the card to finish it");
    }
    this.poll();
    this.frame();
  }

  async loadState() {
    this.state = await get("/api/state");
    const st = this.state;
    const ms = $("model-select");
    ms.replaceChildren(...st.models.map((m) => new Option(m.name, m.path)));
    if (st.model) ms.value = st.model.path;
    const m = st.model;
    $("model-info").textContent = m ? `${m.composers.length - 1} composers · context ${m.context_frames} frames` +
      (m.pointer ? " · pointer" : "") : (st.model_error || "");
    if (st.model_error && !st.model) say(st.model_error);      // a failed switch says so where it happens
    this.setStatus(st.model_loading ? "loading the model…" : "ready", st.model_loading);
    const comp = $("composer");
    comp.replaceChildren(...(m ? m.composers : ["any"]).map((c) => new Option(c, c)));
    const rep = $("repetition-row");
    rep.classList.toggle("off", !(m && m.pointer));
    $("repetition").disabled = !(m && m.pointer);
    $("repetition-note").textContent = m && m.pointer ? "" : "this model has no pointer head: repetition does nothing";
  }

  setStatus(text, busy = false) {
    const s = $("engine-status");
    s.textContent = text;
    s.classList.toggle("busy", busy);
  }

  wireSteer() {
    const c = this.state.controls;
    for (const [name, step] of Object.entries(SLIDERS)) {
      const el = $(name), out = el.nextElementSibling;
      Object.assign(el, { min: c[name].lo, max: c[name].hi, step, value: c[name].default });
      el.title = c[name].doc;
      const show = () => { out.textContent = (+el.value).toFixed(step < 1 ? 2 : 0); };
      el.oninput = show;
      show();
    }
    const len = $("length");
    Object.assign(len, { min: this.state.length_s.lo, max: this.state.length_s.hi, value: this.state.length_s.default });
    $("seed-random").onchange = (e) => { $("seed").disabled = e.target.checked; };
    $("generate").onclick = () => this.generate(1);
    $("generate-4").onclick = () => this.generate(4);
    $("model-select").onchange = (e) => this.selectModel(e.target.value);
    for (const id of ["search-text", "search-composer", "search-seed", "search-starred"]) {
      $(id).oninput = () => this.refreshSoon(250);
    }
  }

  lengthS() { return +$("length").value; }

  settings() {
    const seedRandom = $("seed-random").checked;
    const seed = $("seed").value.trim();
    if (!seedRandom && !/^\d+$/.test(seed)) throw new Error(`field seed: ${JSON.stringify(seed)} is not a whole number in 0..${this.state.seed_max}`);
    const keep = [1, 2, 3].filter((v) => $(`keep-${v}`).checked);
    return {
      temperature: +$("temperature").value, top_k: +$("top_k").value, top_p: +$("top_p").value,
      repetition: +$("repetition").value, composer: $("composer").value, length_s: this.lengthS(),
      seed: seedRandom ? null : Number(seed), keep_voices: keep, chip: $("chip").value || null,
    };
  }

  async generate(count) {
    let req;
    try { req = { kind: "new", count, ...this.prompt.request(), ...this.settings() }; }
    catch (e) { say(e.message); return; }
    await this.makeTakes(req);
  }

  async makeTakes(req) {
    const t0 = performance.now();
    if ($("autoplay").checked) audioContext();      // inside the click: the page may play sound
    try {
      const takes = await post("/api/takes", req);
      takes.forEach((t, i) => {
        this.clicks.set(t.id, t0);
        if (i === 0 && $("autoplay").checked) this.autoplay.add(t.id);
      });
      await this.refresh();
      return takes;
    } catch (e) {
      say(e.message);
      return null;
    }
  }

  async selectModel(path) {
    this.setStatus("loading the model…", true);
    try {
      const m = await post("/api/model", { path });
      note(`model ${m.name} loaded (sha256 ${m.digest.slice(0, 12)}…)`);
    } catch (e) {
      say(e.message);
    }
    await this.loadState();
  }

  useAsPrompt(key, name) {
    if (!this.takeSources.some((s) => s.key === key)) this.takeSources.push({ key, name, kind: "take", songs: 1, start_song: 1 });
    this.prompt.loadSources(key);
    window.scrollTo({ top: 0, behavior: "smooth" });
  }

  liveLog(text) { this.live.log(text); }

  refreshSoon(ms = 50) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(() => this.refresh(), ms);
  }

  async refresh() {
    const q = new URLSearchParams();
    if ($("search-text").value) q.set("q", $("search-text").value);
    if ($("search-composer").value) q.set("composer", $("search-composer").value);
    const seed = $("search-seed").value.trim();
    if (seed) q.set("seed", seed);
    if ($("search-starred").checked) q.set("starred", "1");
    let takes;
    try { takes = await get(`/api/takes?${q}`); } catch (e) { say(e.message); return; }
    this.render(takes);
    const comps = $("search-composer"), keep = comps.value;
    const names = [...new Set(takes.map((t) => t.composer))].sort();
    if (names.join() !== [...comps.options].slice(1).map((o) => o.value).join() && !keep) {
      comps.replaceChildren(new Option("any composer", ""), ...names.map((n) => new Option(n, n)));
    }
    $("takes-count").textContent = `${takes.length} take${takes.length === 1 ? "" : "s"}`;
  }

  render(takes) {
    const list = $("take-list");
    const seen = new Set();
    const groups = [];
    for (const t of takes) {
      seen.add(t.id);
      let card = this.cards.get(t.id);
      if (card) card.update(t); else { card = new Card(t, this); this.cards.set(t.id, card); }
      const g = groups.find((x) => x.id === t.group_id);
      if (g) g.cards.push(card); else groups.push({ id: t.group_id, cards: [card], take: t });
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) { if (this.playing === card) player.stop(); card.el.remove(); this.cards.delete(id); }
    }
    const boxes = groups.map((g) => {
      let box = list.querySelector(`:scope > .group[data-group="${g.id}"]`);
      if (!box) {
        box = document.createElement("div");
        box.dataset.group = String(g.id);
        box.innerHTML = '<div class="group-head"></div><div class="cards"></div>';
      }
      const multi = g.cards.length > 1;
      box.className = multi ? "group" : "group single";
      const st = g.take.settings;
      box.firstChild.textContent = multi ? `${g.cards.length} variations of "${g.take.name.replace(/ · var \d+$/, "")}" · ` +
        `T ${st.temperature} · k ${st.top_k} · p ${st.top_p} · rep ${st.repetition} · ${st.composer} · ` +
        `${(g.take.total_frames / 50.1245).toFixed(1)} s · prompt ${g.take.source || "none"}` : "";
      box.firstChild.hidden = !multi;
      const row = box.lastChild, els = g.cards.slice().sort((a, b) => a.id - b.id).map((c) => c.el);
      if (els.length !== row.children.length || els.some((e, i) => row.children[i] !== e)) row.replaceChildren(...els);
      return box;
    });
    if (boxes.length !== list.children.length || boxes.some((b, i) => list.children[i] !== b)) list.replaceChildren(...boxes);
    for (const c of this.cards.values()) c.roll.draw();
  }

  async poll() {
    for (;;) {
      let r;
      try {
        r = await get(`/api/poll?since=${this.version}`);
      } catch (e) {
        $("offline").hidden = false;
        await new Promise((res) => setTimeout(res, 1000));
        continue;
      }
      if (!$("offline").hidden) { $("offline").hidden = true; await this.reconnected(); }
      const changed = r.version !== this.version;
      this.version = r.version;
      if (r.model_loading !== this.state.model_loading) await this.loadState();
      if (changed) {
        const running = r.jobs.find((j) => j.state === "running");
        this.setStatus(running ? `making take ${running.take_id}: ${running.frames_done}/${running.total_frames} frames` +
          (r.jobs.length > 1 ? ` · ${r.jobs.length - 1} waiting` : "") : (r.model_loading ? "loading the model…" : "ready"),
          Boolean(running) || r.model_loading);
        $("queue-info").textContent = r.jobs.length > 1 ? `${r.jobs.length} takes in the queue` : "";
        const ids = r.jobs.map((j) => j.take_id).join();
        if (ids !== this._jobIds) { this._jobIds = ids; await this.refresh(); }
        else this.refreshThrottled();
        for (const j of r.jobs) { const c = this.cards.get(j.take_id); if (c) c.progress(j); }
      }
    }
  }

  // Other changes (a star, a rename, another tab's takes): at most one list refresh a second.
  refreshThrottled() {
    if (this._throttle) { this._again = true; return; }
    this._throttle = setTimeout(async () => {
      this._throttle = null;
      await this.refresh();
      if (this._again) { this._again = false; this.refreshThrottled(); }
    }, 1000);
  }

  async reconnected() {
    await this.loadState();
    if (this.state.interrupted.length) {
      say(`the studio server restarted: take ${this.state.interrupted.join(", ")} was being made and is marked ` +
        "interrupted (regenerate it from its card); every finished take is intact");
    } else {
      note("the studio server is back");
    }
    await this.refresh();
  }

  frame() {
    if (this.playing) this.playing.tick();
    else if (this.playingPrompt) this.prompt.tick();
    for (const [id, t0] of this.clicks) {
      const card = this.cards.get(id);
      const f = card && card.feed;
      if (!f || f.stats.first_chunk_at === null) continue;
      window.studioFigures[id] = {
        click_to_first_audio_ms: f.stats.first_chunk_at - t0,
        click_to_all_audio_ms: f.stats.done_at !== null ? f.stats.done_at - t0 : null,
        transfer_ms: f.stats.transfer_ms, decode_ms: f.stats.decode_ms, fetches: f.stats.fetches, bytes: f.stats.bytes,
      };
      if (f.stats.done_at !== null) this.clicks.delete(id);
    }
    requestAnimationFrame(() => this.frame());
  }
}

new App().start().catch((e) => say(`the studio could not start: ${e.message}`));
