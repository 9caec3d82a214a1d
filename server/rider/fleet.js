// The buses the rider sees, kept from the live frames (docs/live.md). Each bus
// keeps `localT`: its fix time on this device's clock, worked out from the
// frame's server time `at`, so a phone whose clock is wrong still shows true ages.
export const GREY_AFTER_S = 90;
export const GONE_AFTER_S = 180;

export class Fleet {
  constructor() {
    this.buses = new Map();
  }

  static localT(bus, serverNow, localNow) {
    return localNow - (serverNow - Date.parse(bus.t));
  }

  apply(frame, localNow = Date.now()) {
    const serverNow = Date.parse(frame.at);
    const put = (bus) => {
      const localT = Fleet.localT(bus, serverNow, localNow);
      const old = this.buses.get(bus.id);
      // Reconnects may repeat a bus: keep the newest fix.
      if (old && Date.parse(old.t) > Date.parse(bus.t)) return;
      this.buses.set(bus.id, { ...bus, localT });
    };
    if (frame.type === "snapshot") {
      if (!frame.since) this.buses.clear();
      for (const id of frame.removed || []) this.buses.delete(id);
      frame.vehicles.forEach(put);
    } else if (frame.type === "update") {
      frame.vehicles.forEach(put);
      for (const id of frame.removed || []) this.buses.delete(id);
    } else if (frame.type === "state") {
      const bus = this.buses.get(frame.id);
      if (bus) bus.state = frame.state;
    }
  }

  age(bus, localNow = Date.now()) {
    return (localNow - bus.localT) / 1000;
  }

  // What the map and the list show: live buses, grey when stale, none older than GONE_AFTER_S.
  // `everything` (offline) keeps the old ones too: the last known position is all there is.
  visible(route, localNow = Date.now(), everything = false) {
    const shown = [];
    for (const bus of this.buses.values()) {
      if (route && bus.route_id !== route) continue;
      const age = this.age(bus, localNow);
      if (!everything && age > GONE_AFTER_S) continue;
      const stale = everything || age > GREY_AFTER_S || bus.state === "offline";
      shown.push({ bus, age, stale });
    }
    return shown.sort((a, b) => String(a.bus.route_id).localeCompare(String(b.bus.route_id))
      || String(a.bus.label).localeCompare(String(b.bus.label)));
  }

  routes() {
    return [...new Set([...this.buses.values()].map((b) => b.route_id).filter(Boolean))];
  }

  toJSON() {
    return [...this.buses.values()];
  }

  restore(saved) {
    this.buses = new Map(saved.map((bus) => [bus.id, bus]));
  }
}
