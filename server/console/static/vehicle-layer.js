// Every vehicle on one canvas above the map: a heading arrow (a dot without a heading),
// coloured by state and staleness, gliding from where it is drawn to each new fix.
// One path per colour per frame, so 10,000 vehicles cost a few fills, not 10,000 layers.
/* global L */

export const COLOURS = {
  online: "#1b7a34", stale: "#a86400", offline: "#b3261e", no_gps: "#6b3fa0",
  out_of_service: "#5f6368", auth_error: "#b3261e",
};
const STALE_AFTER_MS = 30000; // online, but its last fix is this old: amber
const GLIDE_MAX_MS = 2000;
const STILL_MAX_MS = 250; // the longest a glide goes undrawn, however slowly it moves

// `t`: the fix's time in ms where the caller has parsed it already (10,000 a second).
export function colourKey(v, now = Date.now(), t = Date.parse(v.t || v.received_at || "")) {
  if (v.auth_error_at && v.state !== "online") return "auth_error";
  if (v.state !== "online") return COLOURS[v.state] ? v.state : "offline";
  return Number.isFinite(t) && now - t > STALE_AFTER_MS ? "stale" : "online";
}

const sprites = new Map();

function sprite(colour, r, bucket, dpr, outline) {
  const key = `${colour}|${r}|${bucket}|${dpr}|${outline}`;
  let c = sprites.get(key);
  if (c) return c;
  const half = Math.ceil(r * 1.7) + 2;
  c = document.createElement("canvas");
  c.width = c.height = Math.ceil(half * 2 * dpr);
  const g = c.getContext("2d", { willReadFrequently: true });
  g.scale(dpr, dpr);
  g.translate(half, half);
  g.beginPath();
  if (bucket < 0) g.arc(0, 0, r, 0, Math.PI * 2);
  else {
    const a = (bucket * 10 * Math.PI) / 180, s = Math.sin(a), k = Math.cos(a), l = r * 1.7;
    g.moveTo(s * l, -k * l);
    g.lineTo(-s * r - k * r, k * r - s * r);
    g.lineTo(-s * r * 0.3, k * r * 0.3);
    g.lineTo(-s * r + k * r, k * r + s * r);
    g.closePath();
  }
  g.fillStyle = COLOURS[colour];
  g.fill();
  // A route's colour as a thicker outline, so the state colour inside still reads.
  g.lineWidth = outline === "#ffffff" ? 1.2 : 2.2;
  g.strokeStyle = outline;
  g.stroke();
  sprites.set(key, c);
  return c;
}

// A sprite as the pixels it covers: stamping pixels into one ImageData is the
// cheapest way to draw 10,000 shapes (drawImage and path fills cost 10-50x more
// where the canvas is emulated, as in headless chromium).
const stamps = new Map();

function stamp(colour, r, bucket, dpr, outline) {
  const key = `${colour}|${r}|${bucket}|${dpr}|${outline}`;
  let st = stamps.get(key);
  if (st) return st;
  const c = sprite(colour, r, bucket, dpr, outline);
  const d = c.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, c.width, c.height);
  const px = new Uint32Array(d.data.buffer);
  const dx = [], dy = [], col = [];
  for (let y = 0; y < c.height; y += 1) {
    for (let x = 0; x < c.width; x += 1) {
      const v = px[y * c.width + x];
      if (v >>> 24 > 96) { dx.push(x); dy.push(y); col.push((v | 0xff000000) >>> 0); }
    }
  }
  st = { dx: Int16Array.from(dx), dy: Int16Array.from(dy), col: Uint32Array.from(col), size: c.width,
    off: null, offW: 0 };
  stamps.set(key, st);
  return st;
}

// A stamp's pixels as offsets into a row of `W` pixels: one add per pixel where the
// whole stamp lands inside the canvas (nearly every marker).
function offsets(st, W) {
  if (st.offW !== W) {
    st.off = new Int32Array(st.col.length);
    for (let k = 0; k < st.col.length; k += 1) st.off[k] = st.dy[k] * W + st.dx[k];
    st.offW = W;
  }
  return st.off;
}

const MAX_LAT = 85.0511287798;

function world(lat, lon) {
  // Web Mercator at zoom 0 (0..256; Leaflet's EPSG3857 inlined: this runs 10,000 times a
  // second), so a zoom change is one multiplication.
  const phi = (Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180;
  return [256 * (0.5 + lon / 360), 256 * (0.5 - Math.log(Math.tan(Math.PI / 4 + phi / 2)) / (2 * Math.PI))];
}

export const VehicleLayer = L.Layer.extend({
  initialize(options = {}) {
    this.items = new Map();
    this.selected = null;
    this.dimmed = false;
    this.frames = 0;
    this.glide = options.glide !== false;
    this.outlineOf = options.outline || (() => null); // v -> "#rrggbb" (its route's) or null
    this._raf = 0;
    this._wait = 0;
    this._cost = 0;
    this._drawnAt = 0;
    this._still = 0; // ms before any gliding marker moves half a device pixel
  },

  onAdd(map) {
    this._canvas = L.DomUtil.create("canvas", "vehicle-canvas", map.getContainer());
    // A CPU canvas: where the GPU is emulated (headless, old tablets) each draw call
    // is a GL round trip; Skia on the CPU draws 10,000 small shapes in a few ms.
    this._ctx = this._canvas.getContext("2d", { willReadFrequently: true });
    map.on("move zoom viewreset resize zoomend", this.redraw, this);
    map.on("zoomstart", this._hide, this);
    map.on("click", this._click, this);
    this._sweep = setInterval(() => this._recolour(), 1000);
    this.redraw();
  },

  onRemove(map) {
    map.off("move zoom viewreset resize zoomend", this.redraw, this);
    map.off("zoomstart", this._hide, this);
    map.off("click", this._click, this);
    clearInterval(this._sweep);
    cancelAnimationFrame(this._raf);
    clearTimeout(this._wait);
    this._canvas.remove();
  },

  upsert(v) {
    if (v.lat == null || v.lon == null) { this.remove(v.device_id); return; }
    const now = performance.now();
    const [x, y] = world(v.lat, v.lon);
    let it = this.items.get(v.device_id);
    const fresh = !it;
    if (!it) {
      it = { id: v.device_id, x0: x, y0: y, x1: x, y1: y, t0: now, dur: 0, sx: NaN, sy: NaN, st: null, stLook: "" };
      this.items.set(v.device_id, it);
    } else if (it.x1 !== x || it.y1 !== y) {
      // Start from where it is drawn now: a newer fix cancels the glide under way.
      const [cx, cy] = this._at(it, now);
      const since = now - (it.fixAt || now);
      Object.assign(it, { x0: cx, y0: cy, x1: x, y1: y, t0: now,
        dur: this.glide ? Math.min(GLIDE_MAX_MS, Math.max(250, since)) : 0 });
    }
    it.fixAt = now;
    it.heading = v.heading;
    it.name = v.vehicle || v.name;
    it.v = v;
    const fixMs = Date.parse(v.t || v.received_at || "");
    const colour = colourKey(v, Date.now(), fixMs);
    const urgent = fresh || colour !== it.colour || !this.glide;
    it.colour = colour;
    it.outline = this.outlineOf(v) || "#ffffff";
    it.fixMs = fixMs || 0;
    it.st = null;
    // A new fix of a placed vehicle is a glide from where it is drawn: the glide's next
    // frame shows it. A new vehicle or a new colour shows at once.
    if (urgent) this.redraw(); else this._schedule();
  },

  remove(id) { if (this.items.delete(id)) this.redraw(); },

  clear() { this.items.clear(); this.redraw(); },

  select(id) { this.selected = id; this.redraw(); },

  setDimmed(dimmed) { this.dimmed = dimmed; if (this._canvas) this._canvas.style.opacity = dimmed ? 0.35 : 1; },

  // Where a vehicle is drawn (for tests and the detail view): [lat, lon] or null.
  drawnAt(id) {
    const it = this.items.get(id);
    if (!it) return null;
    const [x, y] = this._at(it, performance.now());
    const ll = L.CRS.EPSG3857.pointToLatLng(L.point(x, y), 0);
    return [ll.lat, ll.lng];
  },

  gliding() {
    const now = performance.now();
    for (const it of this.items.values()) if (now - it.t0 < it.dur) return true;
    return false;
  },

  // Now (the map moved, a vehicle came, went or changed colour): not after a slow glide's pause.
  redraw() {
    this._still = 0;
    if (this._wait) { clearTimeout(this._wait); this._wait = 0; }
    this._schedule();
  },

  _schedule() {
    if (!this._map || this._raf || this._wait) return;
    // A frame that costs much keeps the thread for the page too: leave it three
    // times the last frame's cost before drawing again (a glide then runs at a
    // lower frame rate, but the map still pans and the table still sorts).
    // A big fleet glides at 30 frames a second: twice the budget left for the rest.
    // A glide that moves no marker by half a device pixel before then needs no frame
    // before then either: a zoomed-out fleet glides at a few frames a second.
    const gap = Math.max(this._cost > 12 ? this._cost * 3 : 0, this.items.size > 2000 ? 33 : 0, this._still);
    const rest = this._drawnAt + gap - performance.now();
    if (rest > 0) {
      this._wait = setTimeout(() => { this._wait = 0; this._schedule(); }, rest);
      return;
    }
    this._raf = requestAnimationFrame((t) => this._frame(t));
  },

  _at(it, now) {
    if (!it.dur || now - it.t0 >= it.dur) return [it.x1, it.y1];
    const k = (now - it.t0) / it.dur;
    const e = k * (2 - k); // ease out: arrives gently
    return [it.x0 + (it.x1 - it.x0) * e, it.y0 + (it.y1 - it.y0) * e];
  },

  _hide() { if (this._canvas) this._canvas.style.visibility = "hidden"; },

  _recolour() {
    const now = Date.now();
    let changed = false;
    for (const it of this.items.values()) {
      // Only "online" turns "stale" by itself; the rest change with a frame (upsert).
      if (it.colour !== "online" || now - it.fixMs <= STALE_AFTER_MS) continue;
      const c = colourKey(it.v, now);
      if (c !== it.colour) { it.colour = c; it.st = null; changed = true; }
    }
    if (changed) this.redraw();
  },

  _frame() {
    const started = performance.now();
    this._draw();
    this._drawnAt = performance.now();
    this._cost = this._drawnAt - started;
  },

  _draw() {
    this._raf = 0;
    const map = this._map;
    if (!map) return;
    this.frames += 1;
    const canvas = this._canvas;
    canvas.style.visibility = "visible";
    const size = map.getSize();
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(size.x * dpr) || canvas.height !== Math.round(size.y * dpr)) {
      canvas.width = Math.round(size.x * dpr); canvas.height = Math.round(size.y * dpr);
      canvas.style.width = `${size.x}px`; canvas.style.height = `${size.y}px`;
    }
    const ctx = this._ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const scale = 2 ** map.getZoom();
    const offset = map.getPixelOrigin().add(map.containerPointToLayerPoint([0, 0]));
    const ox = offset.x, oy = offset.y, w = size.x, h = size.y;
    const zoom = map.getZoom();
    const r = zoom >= 14 ? 7 : zoom >= 11 ? 5 : 3.5;
    const now = performance.now();
    const W = canvas.width, H = canvas.height;
    if (!this._img || this._img.width !== W || this._img.height !== H) {
      this._img = ctx.createImageData(W, H);
      this._buf = new Uint32Array(this._img.data.buffer);
    }
    const buf = this._buf;
    buf.fill(0);
    const labels = [];
    const half = Math.ceil(r * 1.7) + 2;
    let moving = false, fastest = 0; // device pixels per ms, the fastest gliding marker
    // The stamp a marker was last drawn with stays on it until its colour, heading,
    // outline or the marker size changes: no key string and map lookup per marker per frame.
    const look = `${r}|${dpr}`;
    for (const it of this.items.values()) {
      // _at inlined: no [x, y] array per marker per frame.
      let x = it.x1, y = it.y1;
      const dt = now - it.t0;
      if (it.dur && dt < it.dur) {
        const k = dt / it.dur, e = k * (2 - k);
        const ax = x - it.x0, ay = y - it.y0;
        x = it.x0 + ax * e; y = it.y0 + ay * e;
        // The ease's speed now, |dx| + |dy| (never less than the distance): no hypot.
        const v = ((ax < 0 ? -ax : ax) + (ay < 0 ? -ay : ay)) * (2 - 2 * k) / it.dur;
        if (v > fastest) fastest = v;
        moving = true;
      }
      const sx = x * scale - ox, sy = y * scale - oy;
      it.sx = sx; it.sy = sy;
      if (sx < -half || sy < -half || sx > w + half || sy > h + half) continue;
      let st = it.st;
      if (!st || it.stLook !== look) {
        st = it.st = stamp(it.colour, r, it.heading == null ? -1 : Math.round(it.heading / 10) % 36, dpr, it.outline);
        it.stLook = look;
      }
      const size = st.size, px = Math.round(sx * dpr) - (size >> 1), py = Math.round(sy * dpr) - (size >> 1);
      const col = st.col;
      if (px >= 0 && py >= 0 && px + size <= W && py + size <= H) {
        const off = offsets(st, W), base = py * W + px;
        for (let k = 0; k < col.length; k += 1) buf[base + off[k]] = col[k];
      } else {
        const { dx, dy } = st;
        for (let k = 0; k < col.length; k += 1) {
          const X = px + dx[k], Y = py + dy[k];
          if (X >= 0 && X < W && Y >= 0 && Y < H) buf[Y * W + X] = col[k];
        }
      }
      if (labels.length <= 150) labels.push(it);
    }
    ctx.putImageData(this._img, 0, 0);
    if (labels.length <= 150) {
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#ffffff";
      for (const it of labels) {
        ctx.strokeText(it.name, it.sx + r + 4, it.sy + 4);
        ctx.fillStyle = "#1b1f24";
        ctx.fillText(it.name, it.sx + r + 4, it.sy + 4);
      }
    }
    const sel = this.items.get(this.selected);
    if (sel) {
      ctx.beginPath(); ctx.arc(sel.sx, sel.sy, r + 5, 0, Math.PI * 2);
      ctx.lineWidth = 3; ctx.strokeStyle = "#0b57d0"; ctx.stroke();
    }
    this._still = fastest > 0 ? Math.min(STILL_MAX_MS, 0.5 / (fastest * scale * dpr)) : 0;
    if (moving) this._schedule();
  },

  _click(e) {
    const p = e.containerPoint;
    let best = null, bestD = 14 * 14;
    for (const it of this.items.values()) {
      const d = (it.sx - p.x) ** 2 + (it.sy - p.y) ** 2;
      if (d < bestD) { best = it; bestD = d; }
    }
    if (best) this.fire("vehicleclick", { id: best.id });
  },
});
