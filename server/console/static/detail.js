// One vehicle: what it reports, its track and trip statistics over a period with a
// replay, its offline threshold and share links.
import { api, can, download } from "./api.js";
import { ago, kmh, label, route, stateWords } from "./fleet.js";
import { Replay, SPEEDS } from "./replay.js";

const esc = (x) => String(x ?? "").replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
const hms = (s) => {
  s = Math.round(s || 0);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
};
const localInput = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);

export class Detail {
  constructor(root, fleet, map, layer, defaults, showMap) {
    this.showMap = showMap;
    this.root = root; this.fleet = fleet; this.map = map; this.layer = layer; this.defaults = defaults;
    this.id = null; this.replay = null;
  }

  open(id) {
    this.close();
    this.id = id;
    this.layer.select(id);
    const v = this.fleet.vehicles.get(id);
    const now = new Date();
    this.root.innerHTML = `
      <button type="button" class="quiet close" data-act="close" aria-label="Close detail">✕</button>
      <h2 id="detail-title"></h2>
      <dl id="detail-facts"></dl>
      <fieldset><legend>Track</legend>
        <div class="row"><label>From <input id="track-from" type="datetime-local" step="1" value="${localInput(new Date(now - 3600e3))}"></label></div>
        <div class="row"><label>To <input id="track-to" type="datetime-local" step="1" aria-describedby="to-hint"></label> <span id="to-hint" class="muted">empty: now</span></div>
        <div class="row"><button type="button" data-act="track">Show track</button>
          <button type="button" class="quiet" data-act="gpx" title="Every fix of the period (at most a day), for Google Earth, QGIS, JOSM">Download GPX</button>
          <span id="track-msg" role="status" class="muted"></span></div>
        <div id="replay" class="replay" hidden>
          <div class="row">
            <button type="button" data-act="play" id="play">Play</button>
            <label>Speed <select id="speed">${SPEEDS.map((s) => `<option value="${s}"${s === 10 ? " selected" : ""}>${s}x</option>`).join("")}</select></label>
            <output id="replay-time"></output>
          </div>
          <label for="slider">Time</label>
          <input id="slider" type="range" min="0" max="1000" value="0" aria-label="Replay time">
        </div>
        <dl id="trip-stats" aria-label="Trip statistics"></dl>
      </fieldset>
      <fieldset ${can("operator") ? "" : "disabled"}><legend>Offline after</legend>
        <div class="row"><label>Seconds <input id="offline-after" type="number" min="10" step="1" placeholder="${this.defaults.offline_after_s}"></label>
        <button type="button" data-act="offline">Save</button></div>
        <span id="offline-msg" role="status" class="muted"></span>
      </fieldset>
      <fieldset ${can("operator") ? "" : "disabled"}><legend>Share link</legend>
        <div class="row"><label>Expires in <select id="share-hours"><option value="1">1 h</option><option value="8">8 h</option><option value="24" selected>24 h</option><option value="72">3 days</option></select></label>
        <button type="button" data-act="share">Create share link</button></div>
        <ul id="shares"></ul>
        <span id="share-msg" role="status" class="muted"></span>
      </fieldset>`;
    this.root.hidden = false;
    this.root.onclick = (e) => this._act(e);
    this.root.querySelector("#speed").onchange = (e) => { if (this.replay) this.replay.speed = Number(e.target.value); };
    this.root.querySelector("#slider").oninput = (e) => {
      if (!this.replay) return;
      const r = this.replay;
      r.seek(r.start + ((r.end - r.start) * Number(e.target.value)) / 1000);
    };
    if (v?.offline_after_s != null && v.offline_after_s !== this.defaults.offline_after_s) {
      this.root.querySelector("#offline-after").value = v.offline_after_s;
    }
    this.refresh();
    this.loadShares();
    this.root.querySelector("#detail-title").focus?.();
  }

  close() {
    if (this.replay) { this.replay.destroy(); this.replay = null; }
    this.layer.setDimmed(false);
    this.layer.select(null);
    this.id = null;
    this.root.hidden = true;
    this.root.innerHTML = "";
  }

  refresh() {
    if (this.id == null) return;
    const v = this.fleet.vehicles.get(this.id) || { device_id: this.id };
    this.root.querySelector("#detail-title").textContent = label(v);
    const facts = [
      ["State", stateWords(v)], ["Last seen", ago(v.last_seen)], ["Speed", kmh(v.speed)],
      ["Heading", v.heading == null ? "" : `${Math.round(v.heading)}°`], ["Route", route(v)],
      ["Device", v.name], ["Backlog", v.backlog ?? ""], ["Agent", v.agent_version || ""],
      ["Offline after", `${v.offline_after_s ?? this.defaults.offline_after_s} s`],
      ["Position", v.lat == null ? "none yet" : `${v.lat.toFixed(5)}, ${v.lon.toFixed(5)}`],
    ];
    if (v.auth_error_at) facts.push(["Auth error", ago(v.auth_error_at)]);
    this.root.querySelector("#detail-facts").innerHTML =
      facts.map(([k, x]) => `<dt>${k}</dt><dd data-fact="${k}">${esc(x)}</dd>`).join("");
  }

  async _act(e) {
    const act = e.target.closest("[data-act]")?.dataset.act;
    if (!act) return;
    if (act === "close") this.close();
    else if (act === "track") await this.loadTrack();
    else if (act === "gpx") await this.downloadTrack();
    else if (act === "play") this.togglePlay();
    else if (act === "offline") await this.saveOffline();
    else if (act === "share") await this.share();
    else if (act === "revoke-share") await this.revokeShare(e.target.dataset.share);
  }

  period() {
    const from = new Date(this.root.querySelector("#track-from").value);
    const q = new URLSearchParams({ from: from.toISOString() });
    // Empty is now, as the field's hint says (the API's own default is an hour from "from").
    const to = this.root.querySelector("#track-to").value;
    q.set("to", (to ? new Date(to) : new Date()).toISOString());
    return q;
  }

  async loadTrack() {
    const msg = this.root.querySelector("#track-msg");
    msg.textContent = "loading…";
    const q = this.period();
    try {
      const [geo, trips] = await Promise.all([
        api(`/v1/vehicles/${this.id}/track?${q}&max_points=10000`),
        api(`/v1/devices/${this.id}/trips?${q}`),
      ]);
      this.showStats(trips);
      const f = geo.features[0];
      if (this.replay) { this.replay.destroy(); this.replay = null; }
      if (!f || f.geometry.type !== "LineString") {
        msg.textContent = f ? "one fix in this period" : "no fixes in this period";
        this.root.querySelector("#replay").hidden = true;
        return;
      }
      const times = f.properties.times;
      const track = f.geometry.coordinates.map(([lon, lat], i) => ({ lat, lon, t: Date.parse(times[i]) }));
      this.showMap();
      this.replay = new Replay(this.map, track);
      this.replay.speed = Number(this.root.querySelector("#speed").value);
      this.replay.onTick = (t) => this._tick(t);
      this.replay.fit(this.root.offsetWidth < this.map.getSize().x * 0.8 ? this.root.offsetWidth : 0);
      this.replay.seek(this.replay.start);
      this.layer.setDimmed(true);
      this.root.querySelector("#replay").hidden = false;
      msg.textContent = `${f.properties.fixes} fixes${f.properties.simplified ? `, drawn with ${f.properties.points} points` : ""}`;
    } catch (err) { msg.textContent = err.message; }
  }

  async downloadTrack() {
    const msg = this.root.querySelector("#track-msg");
    msg.textContent = "preparing GPX…";
    try { msg.textContent = `saved ${await download(`/v1/vehicles/${this.id}/track.gpx?${this.period()}`)}`; }
    catch (err) { msg.textContent = `GPX not saved: ${err.message}`; }
  }

  showStats(s) {
    const rows = [
      ["Distance", `${(s.distance_m / 1000).toFixed(2)} km`], ["Moving", hms(s.moving_s)],
      ["Stopped", hms(s.stopped_s)], ["Max speed", s.max_speed_ms == null ? "" : kmh(s.max_speed_ms)],
      ["Stops", String(s.stops.length)],
    ];
    if (s.gap_s) rows.push(["No data", hms(s.gap_s)]);
    this.root.querySelector("#trip-stats").innerHTML =
      rows.map(([k, x]) => `<dt>${k}</dt><dd data-stat="${k}">${esc(x)}</dd>`).join("");
  }

  _tick(t) {
    const r = this.replay;
    this.root.querySelector("#replay-time").textContent = new Date(t).toLocaleTimeString();
    const slider = this.root.querySelector("#slider");
    if (document.activeElement !== slider) slider.value = String(Math.round(((t - r.start) / (r.end - r.start || 1)) * 1000));
    this.root.querySelector("#play").textContent = r.playing ? "Pause" : "Play";
  }

  togglePlay() {
    if (!this.replay) return;
    if (this.replay.playing) this.replay.pause(); else this.replay.play();
    this._tick(this.replay.t);
  }

  async saveOffline() {
    const raw = this.root.querySelector("#offline-after").value.trim();
    const msg = this.root.querySelector("#offline-msg");
    try {
      const d = await api(`/v1/devices/${this.id}`, { method: "PATCH", body: { offline_after: raw === "" ? null : Number(raw) } });
      const v = this.fleet.vehicles.get(this.id);
      if (v) v.offline_after_s = d?.offline_after_s ?? (raw === "" ? null : Number(raw));
      msg.textContent = raw === "" ? `saved: the default (${this.defaults.offline_after_s} s)` : `saved: ${raw} s`;
      this.refresh();
    } catch (err) { msg.textContent = err.message; }
  }

  vehicleId() { return this.fleet.vehicles.get(this.id)?.vehicle_id ?? null; }

  async loadShares() {
    const vid = this.vehicleId();
    const list = this.root.querySelector("#shares");
    if (vid == null || !can("operator")) { this.root.querySelector("#share-msg").textContent = vid == null ? "install this unit in a vehicle to share it" : ""; return; }
    try {
      const body = await api(`/v1/vehicles/${vid}/shares`);
      const shares = Array.isArray(body) ? body : body.shares || [];
      list.innerHTML = shares.filter((s) => s.active).map((s) =>
        `<li>link ${esc(s.id)}, until ${esc(new Date(s.expires_at).toLocaleString())}
         <button type="button" class="danger" data-act="revoke-share" data-share="${esc(s.id)}">Revoke link ${esc(s.id)}</button></li>`).join("");
    } catch (err) { this.root.querySelector("#share-msg").textContent = err.message; }
  }

  async share() {
    const vid = this.vehicleId();
    const msg = this.root.querySelector("#share-msg");
    if (vid == null) { msg.textContent = "install this unit in a vehicle to share it"; return; }
    try {
      const hours = Number(this.root.querySelector("#share-hours").value);
      const s = await api(`/v1/vehicles/${vid}/share`, { method: "POST", body: { expires_in: hours * 3600 } });
      // The token is shown this once: the server keeps only its hash.
      msg.innerHTML = `Share link (until ${esc(new Date(s.expires_at).toLocaleString())}): <a id="share-url" href="${esc(s.url)}" target="_blank" rel="noopener">${esc(location.origin + s.url)}</a>`;
      await this.loadShares();
    } catch (err) { msg.textContent = err.message; }
  }

  async revokeShare(id) {
    try { await api(`/v1/shares/${id}`, { method: "DELETE" }); await this.loadShares(); }
    catch (err) { this.root.querySelector("#share-msg").textContent = err.message; }
  }
}
