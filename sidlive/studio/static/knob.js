// A rotary knob: drag up/down (or arrow keys, or the wheel) moves its position 0..1; the
// value shown follows the parameter's curve as the daemon maps a MIDI controller's knob
// (linear; exp: slow start, (10^x - 1) / 9). Moves are sent at most every 30 ms.

const NS = "http://www.w3.org/2000/svg";

export function curveValue(x, lo, hi, curve) {
  const t = curve === "exp" ? (10 ** x - 1) / 9 : curve === "log" ? Math.log10(1 + 9 * x) : x;
  return lo + t * (hi - lo);
}

export function curvePosition(v, lo, hi, curve) {
  const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
  return curve === "exp" ? Math.log10(1 + 9 * t) : curve === "log" ? (10 ** t - 1) / 9 : t;
}

export class Knob {
  constructor(parent, { name, label, lo, hi, value, curve = "linear", digits = 2, onChange }) {
    Object.assign(this, { name, lo, hi, curve, digits, onChange });
    this.x = curvePosition(value, lo, hi, curve);
    this.home = this.x;
    const wrap = document.createElement("div");
    wrap.className = "knob";
    wrap.dataset.name = name;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "-30 -30 60 60");
    svg.setAttribute("tabindex", "0");
    svg.setAttribute("role", "slider");
    svg.setAttribute("aria-label", label);
    const ring = document.createElementNS(NS, "circle");
    ring.setAttribute("r", "24");
    ring.setAttribute("fill", "#242832");
    ring.setAttribute("stroke", "#343a47");
    ring.setAttribute("stroke-width", "2");
    this.arc = document.createElementNS(NS, "path");
    this.arc.setAttribute("fill", "none");
    this.arc.setAttribute("stroke", "#7cc4ff");
    this.arc.setAttribute("stroke-width", "4");
    this.arc.setAttribute("stroke-linecap", "round");
    this.pointer = document.createElementNS(NS, "line");
    this.pointer.setAttribute("stroke", "#e4e6eb");
    this.pointer.setAttribute("stroke-width", "3");
    this.pointer.setAttribute("stroke-linecap", "round");
    svg.append(ring, this.arc, this.pointer);
    this.valueEl = document.createElement("span");
    this.valueEl.className = "knob-value";
    const lab = document.createElement("span");
    lab.className = "knob-label";
    lab.textContent = label;
    wrap.append(svg, this.valueEl, lab);
    parent.append(wrap);
    this.el = svg;
    this._bind(svg);
    this._render();
  }

  get value() { return curveValue(this.x, this.lo, this.hi, this.curve); }

  set(x, send = true) {
    x = Math.min(1, Math.max(0, x));
    if (x === this.x) return;
    this.x = x;
    this._render();
    if (send) this._send();
  }

  _send() {
    const now = performance.now();
    clearTimeout(this._timer);
    if (this._last && now - this._last < 30) {
      this._timer = setTimeout(() => this._send(), 30 - (now - this._last));
      return;
    }
    this._last = now;
    this.onChange && this.onChange(this.x, this.value);
  }

  _render() {
    const a0 = -225, a = a0 + 270 * this.x;
    const pt = (deg, r) => [r * Math.cos((deg * Math.PI) / 180), r * Math.sin((deg * Math.PI) / 180)];
    const [sx, sy] = pt(a0, 20), [ex, ey] = pt(a, 20);
    this.arc.setAttribute("d", `M ${sx} ${sy} A 20 20 0 ${270 * this.x > 180 ? 1 : 0} 1 ${ex} ${ey}`);
    const [px, py] = pt(a, 16);
    this.pointer.setAttribute("x1", "0"); this.pointer.setAttribute("y1", "0");
    this.pointer.setAttribute("x2", String(px)); this.pointer.setAttribute("y2", String(py));
    this.valueEl.textContent = this.value.toFixed(this.digits);
    this.el.setAttribute("aria-valuenow", this.value.toFixed(this.digits));
  }

  _bind(svg) {
    let drag = null;
    svg.addEventListener("pointerdown", (e) => {
      svg.setPointerCapture(e.pointerId);
      drag = { y: e.clientY, x: this.x };
    });
    svg.addEventListener("pointermove", (e) => {
      if (drag) this.set(drag.x + (drag.y - e.clientY) / 150);
    });
    svg.addEventListener("pointerup", () => { drag = null; });
    svg.addEventListener("dblclick", () => this.set(this.home));
    svg.addEventListener("wheel", (e) => { e.preventDefault(); this.set(this.x - e.deltaY / 1500); }, { passive: false });
    svg.addEventListener("keydown", (e) => {
      const step = { ArrowUp: 0.02, ArrowRight: 0.02, ArrowDown: -0.02, ArrowLeft: -0.02 }[e.key];
      if (step) { e.preventDefault(); this.set(this.x + step); }
    });
  }
}
