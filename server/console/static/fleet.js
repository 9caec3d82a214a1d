// The console's picture of the fleet: every vehicle by device id, fed by
// /v1/fleet/live and the live stream's frames.
export const STATE_ORDER = ["offline", "auth_error", "no_gps", "online", "out_of_service"];

export class Fleet extends EventTarget {
  constructor() { super(); this.vehicles = new Map(); }

  // One event per frame, however many vehicles it moved (10,000 events a second cost more
  // than drawing them).
  changed(list) { if (list.length) this.dispatchEvent(new CustomEvent("vehicles", { detail: list })); }

  load(list) {
    this.vehicles.clear();
    for (const v of list) this.vehicles.set(v.device_id, v);
    this.dispatchEvent(new Event("reset"));
  }

  // /v1/fleet/live read again: fields the stream does not carry (auth errors, backlog).
  merge(list) {
    const changed = [];
    for (const v of list) {
      const old = this.vehicles.get(v.device_id);
      if (old && old.t && v.t && old.t > v.t) continue;
      const merged = { ...old, ...v };
      this.vehicles.set(v.device_id, merged);
      changed.push(merged);
    }
    this.changed(changed);
  }

  apply(frame) {
    if (frame.type === "snapshot" && !frame.since) {
      // A full snapshot holds only vehicles with a position; keep the unplaced ones listed.
      const next = new Map();
      for (const v of this.vehicles.values()) if (v.lat == null) next.set(v.device_id, v);
      for (const v of frame.vehicles) next.set(v.device_id, { ...this.vehicles.get(v.device_id), ...v });
      this.vehicles = next;
      this.dispatchEvent(new Event("reset"));
      return;
    }
    if (frame.type === "snapshot" || frame.type === "update") {
      const changed = [];
      for (const v of frame.vehicles) {
        const old = this.vehicles.get(v.device_id);
        if (old && old.t && v.t && old.t > v.t) continue; // keep the newest fix per vehicle
        const merged = old ? Object.assign(old, v) : { ...v };
        this.vehicles.set(v.device_id, merged);
        changed.push(merged);
      }
      this.changed(changed);
      for (const id of frame.removed || []) {
        if (this.vehicles.delete(id)) this.dispatchEvent(new CustomEvent("removed", { detail: id }));
      }
    } else if (frame.type === "state" && frame.device_id != null) {
      const v = this.vehicles.get(frame.device_id) || { device_id: frame.device_id, name: frame.name };
      v.state = frame.state;
      this.vehicles.set(v.device_id, v);
      this.changed([v]);
    }
  }

  counts() {
    const c = { vehicles: this.vehicles.size, online: 0, offline: 0, no_gps: 0, out_of_service: 0, auth_error: 0 };
    for (const v of this.vehicles.values()) {
      c[v.state] = (c[v.state] || 0) + 1;
      if (v.auth_error_at && v.state !== "online") c.auth_error += 1;
    }
    return c;
  }
}

export function label(v) { return v.vehicle || v.name || `device ${v.device_id}`; }
export function route(v) { return v.route_id || v.route || ""; }
export function stateWords(v) {
  if (v.auth_error_at && v.state !== "online") return "auth_error";
  return v.state || "offline";
}
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso || "");
  if (!Number.isFinite(t)) return "never";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 16).replace("T", " ");
}
export function kmh(ms) { return ms == null ? "" : `${(ms * 3.6).toFixed(0)} km/h`; }
