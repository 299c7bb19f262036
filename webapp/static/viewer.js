// The frame viewer shared by the annotator and verifier pages: frames, zoom, mask overlay, strip, slider.
"use strict";

const OVERLAY = [255, 40, 180, 120];

class FrameViewer {
  constructor(task, frames) {
    this.task = task;
    this.frames = frames; // [{frame, status, mask}]
    this.current = 0;
    this.zoom = this.fittingZoom();
    this.showMask = true;
    this.images = new Map();
    this.flagged = new Set(task.flagged_frames || []);
    this.canvas = document.getElementById("canvas");
    this.context = this.canvas.getContext("2d");
    this.maskCanvas = document.createElement("canvas");
    this.maskCanvas.width = task.width;
    this.maskCanvas.height = task.height;
    this.slider = document.getElementById("slider");
    this.slider.max = String(task.frame_count - 1);
    this.onFrame = () => {};
    this.overlay = null; // extra drawing (brush preview, hint)
    this.slider.addEventListener("input", () => this.show(Number(this.slider.value)));
    document.getElementById("zoom").addEventListener("change", (e) => { this.zoom = Number(e.target.value); this.draw(); });
    document.getElementById("overlay").addEventListener("change", (e) => { this.showMask = e.target.checked; this.draw(); });
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA") return;
      if (e.key === "ArrowRight") this.show(Math.min(this.current + 1, task.frame_count - 1));
      if (e.key === "ArrowLeft") this.show(Math.max(this.current - 1, 0));
    });
    this.buildStrip();
    this.show(0);
  }

  // The largest zoom offered that shows the whole frame in the viewer (small videos get big).
  fittingZoom() {
    const select = document.getElementById("zoom");
    const room = document.getElementById("viewer").clientWidth || 800;
    const tall = window.innerHeight * 0.7;
    let best = 1;
    for (const option of select.options) {
      const z = Number(option.value);
      if (this.task.width * z <= room && this.task.height * z <= tall) best = Math.max(best, z);
    }
    select.value = String(best);
    return best;
  }

  frameUrl(index) {
    return `/api/videos/${encodeURIComponent(this.task.video_id)}/frames/${index}`;
  }

  image(index) {
    if (!this.images.has(index)) {
      const img = new Image();
      img.onload = () => { if (index === this.current) this.draw(); };
      img.src = this.frameUrl(index);
      this.images.set(index, img);
    }
    return this.images.get(index);
  }

  show(index) {
    this.current = index;
    this.slider.value = String(index);
    document.getElementById("frame-label").textContent = `frame ${index} / ${this.task.frame_count - 1} · ${this.frames[index].status}`;
    for (let k = 1; k <= 2; k++) if (index + k < this.task.frame_count) this.image(index + k); // prefetch
    this.draw();
    this.markStrip();
    this.onFrame(index);
  }

  update(states) {
    for (const state of states) this.frames[state.frame] = state;
    this.markStrip();
    if (states.some((s) => s.frame === this.current)) this.show(this.current);
  }

  draw() {
    const { width, height } = this.task;
    const z = this.zoom;
    if (this.canvas.width !== width * z) this.canvas.width = width * z;
    if (this.canvas.height !== height * z) this.canvas.height = height * z;
    const ctx = this.context;
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const img = this.image(this.current);
    if (img.complete && img.naturalWidth) ctx.drawImage(img, 0, 0, width * z, height * z);
    const state = this.frames[this.current];
    let count = 0;
    if (this.showMask && state && state.mask) {
      const painted = maskPixels(state.mask, OVERLAY);
      count = painted.count;
      this.maskCanvas.getContext("2d").putImageData(painted.image, 0, 0);
      ctx.drawImage(this.maskCanvas, 0, 0, width * z, height * z);
    }
    this.canvas.dataset.maskPixels = String(count);
    this.canvas.dataset.frame = String(this.current);
    if (this.overlay) this.overlay(ctx, z);
  }

  buildStrip() {
    const strip = document.getElementById("strip");
    strip.replaceChildren();
    this.cells = [];
    for (let i = 0; i < this.task.frame_count; i++) {
      const cell = document.createElement("button");
      cell.className = "cell";
      cell.title = `frame ${i}`;
      cell.dataset.frame = String(i);
      cell.addEventListener("click", () => this.show(i));
      strip.appendChild(cell);
      this.cells.push(cell);
    }
    this.markStrip();
  }

  markStrip() {
    this.cells.forEach((cell, i) => {
      const state = this.frames[i];
      cell.className = "cell " + (state ? state.status : "todo") + (this.flagged.has(i) ? " flagged" : "") + (i === this.current ? " current" : "");
      cell.dataset.status = state ? state.status : "todo";
    });
  }

  // Canvas pixels -> frame pixels.
  framePoint(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * (this.canvas.width / rect.width) / this.zoom;
    const y = (event.clientY - rect.top) * (this.canvas.height / rect.height) / this.zoom;
    return [Math.max(0, Math.min(this.task.width, x)), Math.max(0, Math.min(this.task.height, y))];
  }
}

// Runs of frames looked at, reported as "examine" events (time spent judging frames).
class ExamineLog {
  constructor(taskId) {
    this.taskId = taskId;
    this.run = null;
    this.paused = false;
  }
  saw(frame) {
    if (this.run && frame === this.run.last + 1) { this.run.last = frame; return; }
    if (this.run && frame === this.run.last) return;
    this.flush();
    this.run = { first: frame, last: frame };
  }
  async flush() {
    if (!this.run || this.paused) return;
    const run = this.run;
    this.run = null;
    try { await api("POST", `/api/tasks/${this.taskId}/examine`, run); } catch (e) { /* the next action reports a lost lease */ }
  }
}

function startHeartbeat(taskId, leaseSeconds, onLost) {
  const label = document.getElementById("lease");
  const beat = async () => {
    try {
      const answer = await api("POST", `/api/tasks/${taskId}/heartbeat`);
      label.textContent = "lease until " + new Date(answer.lease_expires_at).toLocaleTimeString();
    } catch (e) {
      if (e.status === 409 || e.status === 403 || e.status === 404) { onLost(e.message); clearInterval(timer); }
    }
  };
  const timer = setInterval(beat, Math.max(2000, (leaseSeconds * 1000) / 3));
  beat();
  return timer;
}
