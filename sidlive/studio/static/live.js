// The instrument panel: a running `sidlive live` steered over OSC (through the studio's
// server) like a MIDI controller would: knobs for temperature and repetition, reseed, mutes;
// the prompt selection or a take's selection becomes its loop.

import { post, say, note } from "./api.js";
import { Knob } from "./knob.js";

const $ = (id) => document.getElementById(id);

export class Live {
  constructor(app) {
    this.app = app;
    this.muted = { 1: false, 2: false, 3: false };
    this.knobs = {};
  }

  init(info) {
    $("live-host").value = info.host;
    $("live-port").value = info.port;
    const box = $("knobs");
    box.replaceChildren();
    for (const k of info.knobs.filter((k) => ["temperature", "repetition"].includes(k.name))) {
      this.knobs[k.name] = new Knob(box, {
        name: k.name, label: k.name, lo: k.lo, hi: k.hi, value: k.default, curve: k.curve,
        onChange: (x) => this.control({ name: k.name, unit: x }),
      });
    }
    $("live-set").onclick = async () => {
      try {
        const r = await post("/api/live/target", { host: $("live-host").value, port: +$("live-port").value });
        note(`sending to ${r.host}:${r.port}`);
      } catch (e) { say(e.message); }
    };
    $("live-reseed").onclick = () => this.control({ name: "reseed" });
    for (const b of document.querySelectorAll("#live .mute")) {
      b.onclick = () => {
        const v = +b.dataset.voice;
        this.muted[v] = !this.muted[v];
        b.classList.toggle("on", this.muted[v]);
        this.control({ name: `mute_${v}`, value: this.muted[v] ? 1 : 0 });
      };
    }
    $("live-send-prompt").onclick = async () => {
      const req = this.app.prompt.request();
      if (!req.source) { say("pick a source and select 2-16 s of it first"); return; }
      try {
        const r = await post("/api/live/loop", req);
        note(`loop ${r.name} (${r.seconds} s) written to ${r.path}; selecting it as loop ${r.index} on ${r.host}:${r.port}`);
        this.log(`loop ${r.name} → /sidlive/loop ${r.index}`);
      } catch (e) { say(e.message); }
    };
  }

  async control(body) {
    try {
      const r = await post("/api/live/control", body);
      this.log(`${r.address} ${r.args.map((a) => (typeof a === "number" ? +a.toFixed(3) : a)).join(" ")} → ${r.host}:${r.port}`);
    } catch (e) {
      say(e.message);
    }
  }

  log(text) { $("live-log").textContent = text; }
}
