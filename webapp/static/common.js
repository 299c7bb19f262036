// Shared by every page: the JSON API with the CSRF token, messages, masks as canvas pixels.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `request failed (${status})`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const options = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = CSRF;
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401) {
    window.location.assign("/login");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function toast(message, kind) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  box.className = "toast " + (kind || "");
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

// A mask sent as row-major run lengths (background first) -> RGBA pixels in `color`.
function maskPixels(wire, color) {
  const { width, height, runs } = wire;
  const pixels = new Uint8ClampedArray(width * height * 4);
  let at = 0, on = false, count = 0;
  for (const run of runs) {
    if (on) {
      for (let i = at; i < at + run; i++) {
        const p = i * 4;
        pixels[p] = color[0]; pixels[p + 1] = color[1]; pixels[p + 2] = color[2]; pixels[p + 3] = color[3];
      }
      count += run;
    }
    at += run;
    on = !on;
  }
  return { image: new ImageData(pixels, width, height), count };
}

// "3, 7-9" -> [3, 7, 8, 9]
function parseFrames(text) {
  const frames = new Set();
  for (const part of (text || "").split(",")) {
    const bits = part.trim().split("-").map((b) => b.trim()).filter(Boolean);
    if (bits.length === 1 && /^\d+$/.test(bits[0])) frames.add(Number(bits[0]));
    if (bits.length === 2 && /^\d+$/.test(bits[0]) && /^\d+$/.test(bits[1])) {
      for (let f = Number(bits[0]); f <= Number(bits[1]) && f - Number(bits[0]) < 100000; f++) frames.add(f);
    }
  }
  return [...frames].sort((a, b) => a - b);
}

document.getElementById("logout")?.addEventListener("click", async () => {
  try { await api("POST", "/api/session/logout"); } finally { window.location.assign("/login"); }
});
