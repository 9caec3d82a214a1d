// Replaying a track on the map: play/pause, 1x-60x, a time slider.
/* global L */
export const SPEEDS = [1, 2, 5, 10, 30, 60];

export class Replay {
  constructor(map, track) {
    // track: [{t: ms, lat, lon}] in time order
    this.map = map; this.track = track; this.speed = 10; this.playing = false;
    this.t = track[0].t; this._raf = 0; this._last = 0;
    this.line = L.polyline(track.map((p) => [p.lat, p.lon]), { color: "#0b57d0", weight: 4, opacity: 0.8 }).addTo(map);
    this.marker = L.circleMarker([track[0].lat, track[0].lon], { radius: 9, color: "#fff", weight: 3, fillColor: "#0b57d0", fillOpacity: 1 }).addTo(map);
    this.onTick = () => {};
  }

  get start() { return this.track[0].t; }
  get end() { return this.track[this.track.length - 1].t; }

  position(t) {
    const tr = this.track;
    let lo = 0, hi = tr.length - 1;
    if (t <= tr[0].t) return [tr[0].lat, tr[0].lon];
    if (t >= tr[hi].t) return [tr[hi].lat, tr[hi].lon];
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (tr[mid].t <= t) lo = mid; else hi = mid; }
    const a = tr[lo], b = tr[hi], k = (t - a.t) / (b.t - a.t || 1);
    return [a.lat + (b.lat - a.lat) * k, a.lon + (b.lon - a.lon) * k];
  }

  seek(t) {
    this.t = Math.min(this.end, Math.max(this.start, t));
    this.marker.setLatLng(this.position(this.t));
    this.onTick(this.t);
  }

  play() {
    if (this.t >= this.end) this.seek(this.start);
    this.playing = true; this._last = performance.now();
    const step = (now) => {
      if (!this.playing) return;
      this.seek(this.t + (now - this._last) * this.speed);
      this._last = now;
      if (this.t >= this.end) { this.pause(); return; }
      this._raf = requestAnimationFrame(step);
    };
    this._raf = requestAnimationFrame(step);
  }

  pause() { this.playing = false; cancelAnimationFrame(this._raf); this.onTick(this.t); }

  fit(right = 0) {
    // Leave the detail panel's width free on the right: the track stays in sight beside it.
    this.map.fitBounds(this.line.getBounds(), { paddingTopLeft: [30, 30], paddingBottomRight: [right + 30, 30], maxZoom: 16 });
  }

  destroy() { this.pause(); this.line.remove(); this.marker.remove(); }
}
