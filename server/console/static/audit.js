// The audit log (admins only): who did what to which record, newest first, from
// GET /v1/audit; filtered by the server (actor, action, record, days), paged with "Older".
import { api } from "./api.js";
import { ago } from "./fleet.js";
import { loadRoutes } from "./routes.js";

const esc = (x) => String(x ?? "").replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
const PAGE = 50;
const NO_MATCH = { actor: "", action: "", target: "", from: "", to: "" };
const GROUPS = [["device", "Devices"], ["vehicle", "Vehicles"], ["route", "Routes"], ["user", "Users"]];
// What the server records (docs/fleet.md); the select offers these, the table shows any.
const ACTIONS = ["device.create", "device.update", "device.rotate", "device.revoke", "enrollment.issue",
  "enrollment.use", "vehicle.create", "vehicle.update", "vehicle.assign", "vehicle.delete",
  "share.create", "share.revoke", "route.create", "route.update", "route.delete", "user.create", "user.update",
  "user.delete"];

function when(iso) {
  const t = new Date(iso);
  return `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(t.toLocaleString())}</time>` +
    ` <span class="muted">${esc(ago(iso))}</span>`;
}

// Local midnight starting `day` (or `days` after it), in the UTC ISO form the server reads.
function dayStart(day, days) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + days).toISOString();
}

function detailText(detail) {
  return Object.entries(detail || {}).map(([k, v]) =>
    `${k}: ${v === null ? "none" : typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

export class AuditPanel {
  constructor(root) {
    this.root = root; this.root.classList.add("panel");
    // target: "device:12", "vehicle:3" or ""; from, to: local days ("2026-12-01") or "".
    this.match = { ...NO_MATCH };
    this.entries = []; this.more = false; this.names = new Map();
    this.root.addEventListener("click", (e) => { if (e.target.closest("#audit-older")) this.older(); });
  }

  query(before) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (this.match.actor.trim()) q.set("actor", this.match.actor.trim());
    if (this.match.action) q.set("action", this.match.action);
    if (this.match.target) {
      const at = this.match.target.indexOf(":"); // a route id may hold ":" itself
      q.set("target_type", this.match.target.slice(0, at)); q.set("target_id", this.match.target.slice(at + 1));
    }
    // Whole local days, "to" included: the server's range ends just before the next midnight.
    if (this.match.from) q.set("from", dayStart(this.match.from, 0));
    if (this.match.to) q.set("to", dayStart(this.match.to, 1));
    if (before) q.set("before", String(before));
    return `/v1/audit?${q}`;
  }

  // Records by name: an entry keeps only their id, which no operator remembers.
  async loadNames() {
    const [devices, vehicles, users, routes] = await Promise.all([
      api("/v1/devices").then((r) => r.devices).catch(() => []),
      api("/v1/vehicles").then((r) => (Array.isArray(r) ? r : r.vehicles)).catch(() => []),
      api("/v1/users").then((r) => r.users).catch(() => []),
      loadRoutes().then((m) => [...m.values()]).catch(() => []),
    ]);
    this.names = new Map([...devices.map((d) => [`device:${d.id}`, d.name]),
      ...vehicles.map((v) => [`vehicle:${v.id}`, v.label]), ...users.map((u) => [`user:${u.id}`, u.username]),
      ...routes.map((r) => [`route:${r.route_id}`, r.short_name || r.long_name || r.route_id])]);
  }

  target(e) {
    const key = `${e.target_type}:${e.target_id}`;
    // A deleted record is no longer listed; its entries kept the name it had.
    const name = this.names.get(key) ?? e.detail?.label ?? e.detail?.name ?? e.detail?.username ?? e.detail?.short_name;
    return `${esc(e.target_type)} ${name != null ? `<b>${esc(name)}</b> <span class="muted">#${esc(e.target_id)}</span>`
      : `#${esc(e.target_id)}`}`;
  }

  async render() {
    let message = "";
    try {
      await this.loadNames();
      this.entries = await api(this.query());
      this.more = this.entries.length === PAGE;
    } catch (err) { this.entries = []; this.more = false; message = err.message; }
    this.draw(message);
    this.root.scrollTop = 0; // a new first page starts at its newest entry, not where Older left off
  }

  async older() {
    const last = this.entries[this.entries.length - 1];
    if (!last) return;
    try {
      const page = await api(this.query(last.id));
      this.entries.push(...page);
      this.more = page.length === PAGE;
      this.draw();
    } catch (err) { this.root.querySelector("#audit-msg").textContent = `Older entries not loaded: ${err.message}`; }
  }

  draw(message = "") {
    const m = this.match;
    const opt = (value, text, sel) => `<option value="${esc(value)}"${value === sel ? " selected" : ""}>${esc(text)}</option>`;
    // A chosen record deleted since stays chosen, by its id.
    const gone = m.target && !this.names.has(m.target) ? opt(m.target, m.target.replace(":", " #"), m.target) : "";
    const groups = GROUPS.map(([type, heading]) => {
      const list = [...this.names.entries()].filter(([k]) => k.startsWith(`${type}:`))
        .sort((a, b) => String(a[1]).localeCompare(String(b[1]), undefined, { numeric: true }));
      return list.length ? `<optgroup label="${heading}">${list.map(([k, name]) => opt(k, `${type} ${name}`, m.target)).join("")}</optgroup>` : "";
    }).join("");
    const filtered = m.actor.trim() || m.action || m.target || m.from || m.to;
    const empty = filtered ? "No actions match these filters." : "No actions recorded yet.";
    this.root.innerHTML = `<h2>Audit log</h2>
      <form id="audit-filter">
        <label>Who <input name="actor" value="${esc(m.actor)}" placeholder="username" autocomplete="off"></label>
        <label>Action <select name="action">${opt("", "any", m.action)}${ACTIONS.map((a) => opt(a, a, m.action)).join("")}</select></label>
        <label>Record <select name="target">${opt("", "any record", m.target)}${gone}${groups}</select></label>
        <label>From <input type="date" name="from" value="${esc(m.from)}"></label>
        <label>To <input type="date" name="to" value="${esc(m.to)}"></label>
        <button type="submit">Filter</button>
        ${filtered ? `<button type="button" class="quiet" id="audit-clear">Clear filters</button>` : ""}
      </form>
      <div id="audit-msg" role="status">${esc(message)}</div>
      ${this.entries.length ? `<table id="audit"><thead><tr><th>Time</th><th>Who</th><th>Action</th><th>Record</th><th>Details</th></tr></thead><tbody>
      ${this.entries.map((e) => `<tr data-entry="${e.id}"><td>${when(e.at)}</td><td>${esc(e.actor)}</td>
        <td><code>${esc(e.action)}</code></td><td>${this.target(e)}</td><td class="wrap">${esc(detailText(e.detail))}</td></tr>`).join("")}
      </tbody></table>
      <p class="muted">${this.entries.length} shown, newest first.
        ${this.more ? `<button type="button" class="quiet" id="audit-older">Older</button>` : "That is all."}</p>`
        : message ? "" : `<p class="empty">${empty}</p>`}`;
    const form = this.root.querySelector("#audit-filter");
    const apply = () => {
      const data = new FormData(form);
      this.match = { actor: data.get("actor"), action: data.get("action"), target: data.get("target"),
        from: data.get("from"), to: data.get("to") };
      // Swapped days mean the range between them, not a refusal.
      if (this.match.from && this.match.to && this.match.from > this.match.to) {
        [this.match.from, this.match.to] = [this.match.to, this.match.from];
      }
      this.busy(this.render());
    };
    form.onsubmit = (e) => { e.preventDefault(); apply(); };
    // Days wait for Filter, like Who: typing a year fires change at every digit.
    form.querySelectorAll("select").forEach((s) => { s.onchange = apply; });
    const clear = this.root.querySelector("#audit-clear");
    if (clear) clear.onclick = () => { this.match = { ...NO_MATCH }; this.busy(this.render()); };
  }

  // Busy until the new rows are in, as for a visit (main.js): what shows before is the old filter's.
  busy(pending) {
    this.root.setAttribute("aria-busy", "true");
    pending.finally(() => this.root.removeAttribute("aria-busy"));
  }
}
