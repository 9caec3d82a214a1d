// Devices (bus units: create, enrollment code, rotate, revoke) and vehicles (label,
// plate, the unit installed, today's route).
import { api, can } from "./api.js";
import { ago } from "./fleet.js";
import { loadRoutes, routeOptions } from "./routes.js";

const esc = (x) => String(x ?? "").replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);

export class DevicesPanel {
  constructor(root) { this.root = root; this.root.classList.add("panel"); this.root.onclick = (e) => this._act(e); }

  async render(message = "") {
    const admin = can("admin");
    let devices = [];
    try { devices = (await api("/v1/devices")).devices; } catch (err) { message = err.message; }
    this.root.innerHTML = `
      <h2>Devices</h2>
      ${admin ? `<form id="new-device">
        <label>Name <input name="name" required placeholder="bus-17"></label>
        <label>Route <input name="route" placeholder="5"></label>
        <button type="submit">Create device</button></form>` : ""}
      <div id="device-msg" role="status">${message}</div>
      <table><thead><tr><th>Name</th><th>Route</th><th>Token</th><th>Last seen</th><th>Actions</th></tr></thead><tbody>
      ${devices.map((d) => `<tr data-device="${d.id}"><td>${esc(d.name)}</td><td>${esc(d.route)}</td>
        <td>${d.active ? "active" : "revoked"}</td><td>${esc(ago(d.last_seen))}</td>
        <td>${admin || can("operator") ? `<button type="button" class="quiet" data-act="code" data-id="${d.id}" data-name="${esc(d.name)}">Enrollment code</button>` : ""}
        ${admin ? `<button type="button" class="quiet" data-act="rotate" data-id="${d.id}" data-name="${esc(d.name)}">Rotate token</button>
        ${d.active ? `<button type="button" class="danger" data-act="revoke" data-id="${d.id}" data-name="${esc(d.name)}">Revoke</button>` : ""}` : ""}</td></tr>`).join("")}
      </tbody></table>`;
    const form = this.root.querySelector("#new-device");
    if (form) form.onsubmit = (e) => { e.preventDefault(); this.create(new FormData(form)); };
  }

  secret(text) { return `<p class="secret" data-secret>${esc(text)}</p>`; }

  async create(data) {
    try {
      const body = { name: data.get("name") };
      if (data.get("route")) body.route = data.get("route");
      const d = await api("/v1/devices", { method: "POST", body });
      await this.render(`Created ${esc(d.name)}. Its token (shown once):${this.secret(d.token)}` +
        `<button type="button" data-act="code" data-id="${d.id}" data-name="${esc(d.name)}">Enrollment code for ${esc(d.name)}</button>`);
    } catch (err) { this.root.querySelector("#device-msg").textContent = err.message; }
  }

  async _act(e) {
    const b = e.target.closest("[data-act]");
    if (!b) return;
    const { act, id, name } = b.dataset;
    const msg = () => this.root.querySelector("#device-msg");
    try {
      if (act === "code") {
        const c = await api(`/v1/devices/${id}/enrollment-code`, { method: "POST" });
        msg().innerHTML = `Enrollment code for ${esc(name)} (until ${esc(new Date(c.expires_at).toLocaleString())}); on the bus unit run <code>bustracker-agent enroll --server ${esc(location.origin)} --code ${esc(c.code)}</code>:${this.secret(c.code)}`;
      } else if (act === "rotate") {
        if (!confirm(`Issue a new token for ${name}? The old one stops working.`)) return;
        const r = await api(`/v1/devices/${id}/rotate`, { method: "POST" });
        await this.render(`New token for ${esc(name)} (shown once):${this.secret(r.token)}`);
      } else if (act === "revoke") {
        if (!confirm(`Revoke ${name}'s token? The unit can no longer report.`)) return;
        await api(`/v1/devices/${id}/revoke`, { method: "POST" });
        await this.render(`Revoked ${esc(name)}.`);
      }
    } catch (err) { msg().textContent = err.message; }
  }
}

export class VehiclesPanel {
  constructor(root) { this.root = root; this.root.classList.add("panel"); }

  async render(message = "") {
    let vehicles, devices = [];
    try {
      vehicles = await api("/v1/vehicles");
      vehicles = Array.isArray(vehicles) ? vehicles : vehicles.vehicles;
      devices = (await api("/v1/devices")).devices;
      await loadRoutes();
    } catch (err) {
      this.root.innerHTML = `<h2>Vehicles</h2><p role="status">${err.status === 404 ? "This server has no vehicles API yet." : esc(err.message)}</p>`;
      return;
    }
    const op = can("operator");
    const opts = (sel) => `<option value="">none</option>` + devices.map((d) =>
      `<option value="${d.id}"${d.id === sel ? " selected" : ""}>${esc(d.name)}</option>`).join("");
    this.root.innerHTML = `<h2>Vehicles</h2>
      ${op ? `<form id="new-vehicle"><label>Label <input name="label" required></label>
        <label>Plate <input name="plate"></label><button type="submit">Add vehicle</button></form>` : ""}
      <div id="vehicle-msg" role="status">${message}</div>
      <table><thead><tr><th>Label</th><th>Plate</th><th>Unit</th><th>Route</th><th>Trip</th><th></th></tr></thead><tbody>
      ${vehicles.map((v) => `<tr data-vehicle="${v.id}"><td>${esc(v.label)}</td><td>${esc(v.plate)}</td>
        <td><select aria-label="Unit in ${esc(v.label)}" data-field="device_id" ${op ? "" : "disabled"}>${opts(v.device_id)}</select></td>
        <td><select aria-label="Route of ${esc(v.label)}" data-field="route_id" ${op ? "" : "disabled"}>${routeOptions(v.route_id)}</select></td>
        <td><input aria-label="Trip of ${esc(v.label)}" data-field="trip_id" value="${esc(v.trip_id)}" size="10" ${op ? "" : "disabled"}></td>
        <td>${op ? `<button type="button" class="quiet" data-save="${v.id}">Save</button>` : ""}</td></tr>`).join("")}
      </tbody></table>`;
    const form = this.root.querySelector("#new-vehicle");
    if (form) form.onsubmit = async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      try {
        await api("/v1/vehicles", { method: "POST", body: { label: data.get("label"), plate: data.get("plate") || null } });
        await this.render(`Added ${esc(data.get("label"))}.`);
      } catch (err) { this.root.querySelector("#vehicle-msg").textContent = err.message; }
    };
    this.root.querySelectorAll("[data-save]").forEach((b) => b.addEventListener("click", async () => {
      const tr = b.closest("tr");
      const dev = tr.querySelector("[data-field=device_id]").value;
      const body = { device_id: dev === "" ? null : Number(dev), route_id: tr.querySelector("[data-field=route_id]").value || null,
        trip_id: tr.querySelector("[data-field=trip_id]").value.trim() || null };
      try { await api(`/v1/vehicles/${b.dataset.save}`, { method: "PATCH", body }); await this.render("Saved."); }
      catch (err) { this.root.querySelector("#vehicle-msg").textContent = err.message; }
    }));
  }
}
