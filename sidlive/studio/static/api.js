// The studio's JSON API and the page's messages.

export class ApiError extends Error {}

async function reply(r) {
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = body && body.error ? body.error : `${r.status} ${r.statusText}`;
    throw new ApiError(msg);
  }
  return body;
}

export async function get(url) {
  return reply(await fetch(url, { cache: "no-store" }));
}

export async function send(method, url, data) {
  return reply(await fetch(url, {
    method, headers: { "Content-Type": "application/json" },
    body: data === undefined ? undefined : JSON.stringify(data),
  }));
}

export const post = (url, data) => send("POST", url, data ?? {});

export async function upload(file) {
  const r = await fetch(`/api/sources/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
  return reply(r);
}

// Messages: errors stay until closed (or 20 s), notes go after 6 s.
export function say(text, kind = "error") {
  const box = document.getElementById("messages");
  const div = document.createElement("div");
  div.className = "msg " + (kind === "error" ? "" : "info");
  const close = document.createElement("button");
  close.textContent = "×";
  close.title = "close";
  close.onclick = () => div.remove();
  div.append(close, document.createTextNode(text));
  box.prepend(div);
  while (box.children.length > 6) box.lastChild.remove();
  setTimeout(() => div.remove(), kind === "error" ? 20000 : 6000);
  return div;
}

export const note = (text) => say(text, "info");

export function fmtTime(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
}

export function fmtBytes(n) {
  return n.toLocaleString("en-US");
}
