// Routes: the one list of `/v1/routes` (feed and operators' own), kept here for the
// vehicles' route select, the fleet table's route chips, and the Routes panel.
import { api, can } from "./api.js";

const esc = (x) => String(x ?? "").replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
export const routes = new Map(); // route_id -> route as /v1/routes gives it
export const routesChanged = new EventTarget();

export async function loadRoutes() {
  const list = await api("/v1/routes");
  routes.clear();
  for (const r of Array.isArray(list) ? list : list.routes || []) routes.set(r.route_id, r);
  routesChanged.dispatchEvent(new Event("change"));
  return routes;
}

// "#RRGGBB" of a route, or null when it has none (or is not in the list).
export function routeColour(id) {
  const c = routes.get(id)?.color;
  return c ? `#${c}` : null;
}

// What operators call a route: its short name, else its id (also when it is not listed).
export function routeName(id) {
  const r = routes.get(id);
  return r?.short_name || r?.long_name || id || "";
}

function luminance(hex) {
  const channel = (i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
}
const ratio = (a, b) => {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
};
const HEX = /^[0-9A-Fa-f]{6}$/;

// The route as a chip in its colour, named by its short name, the long name as its
// tooltip; a route not in the list is its id, plain. The text is the route's own text
// colour when that reads (4.5:1, as the rider app), else black or white, whichever reads better.
export function routeChip(id) {
  const r = routes.get(id);
  if (!r) return esc(id);
  const title = r.long_name ? ` title="${esc(r.long_name)}"` : "";
  if (!r.color || !HEX.test(r.color)) return `<span class="chip"${title}>${esc(routeName(id))}</span>`;
  let fg = r.text_color && HEX.test(r.text_color) ? r.text_color : "";
  if (!fg || ratio(r.color, fg) < 4.5) fg = ratio(r.color, "000000") >= ratio(r.color, "FFFFFF") ? "000000" : "FFFFFF";
  // The style attribute is allowed by the CSP (style-src 'unsafe-inline'); scripts are not.
  return `<span class="chip" style="background:#${r.color};color:#${fg}" data-colour="#${r.color}"${title}>` +
    `${esc(routeName(id))}</span>`;
}

export function routeOptions(selected) {
  const list = [...routes.values()].sort((a, b) =>
    String(a.short_name || a.route_id).localeCompare(String(b.short_name || b.route_id), undefined, { numeric: true }));
  const known = !selected || routes.has(selected);
  return `<option value="">none</option>` +
    (known ? "" : `<option value="${esc(selected)}" selected>${esc(selected)} (not in the routes list)</option>`) +
    list.map((r) => `<option value="${esc(r.route_id)}"${r.route_id === selected ? " selected" : ""}>` +
      `${esc(r.short_name || r.route_id)}${r.long_name ? ` · ${esc(r.long_name)}` : ""}</option>`).join("");
}

const swatch = (r) => r.color
  ? `<span class="swatch" style="background:#${esc(r.color)}" title="#${esc(r.color)}"></span>` : "";

export class RoutesPanel {
  constructor(root) {
    this.root = root; this.root.classList.add("panel");
    this.root.addEventListener("click", (e) => this._act(e));
  }

  msg(text) { this.root.querySelector("#route-msg").textContent = text; }

  async render(message = "") {
    try { await loadRoutes(); } catch (err) { message = err.message; }
    const op = can("operator");
    const rows = [...routes.values()].map((r) => {
      const feed = r.source !== "operator";
      return `<tr data-route="${esc(r.route_id)}"><td>${esc(r.route_id)}</td>
        <td>${op && !feed ? `<input aria-label="Short name of ${esc(r.route_id)}" data-field="short_name" value="${esc(r.short_name)}" size="6">` : esc(r.short_name)}</td>
        <td>${op && !feed ? `<input aria-label="Long name of ${esc(r.route_id)}" data-field="long_name" value="${esc(r.long_name)}">` : esc(r.long_name)}</td>
        <td>${op && !feed ? `<input type="color" aria-label="Colour of ${esc(r.route_id)}" data-field="color" data-had="${r.color ? "yes" : ""}" value="#${esc(r.color || "0B57D0")}">` : swatch(r)}</td>
        <td>${feed ? "GTFS feed" : "operator"}</td>
        <td>${op ? (feed
          ? `<span class="muted">from the feed: change the feed</span> <button type="button" class="quiet" data-act="try-edit" data-id="${esc(r.route_id)}">Edit</button>`
          : `<button type="button" class="quiet" data-act="save" data-id="${esc(r.route_id)}">Save</button>
             <button type="button" class="danger" data-act="delete" data-id="${esc(r.route_id)}">Delete</button>`) : ""}</td></tr>`;
    }).join("");
    this.root.innerHTML = `<h2>Routes</h2>
      ${op ? `<form id="new-route">
        <label>Route id <input name="route_id" required pattern="[A-Za-z0-9._:\\-]{1,64}" placeholder="N1"></label>
        <label>Short name <input name="short_name" required size="6" placeholder="N1"></label>
        <label>Long name <input name="long_name" placeholder="Night line"></label>
        <label>Colour <input name="color" type="color" value="#0b57d0"></label>
        <button type="submit">Add route</button></form>` : ""}
      <div id="route-msg" role="status">${esc(message)}</div>
      <table><thead><tr><th>Id</th><th>Short name</th><th>Long name</th><th>Colour</th><th>Source</th><th></th></tr></thead>
      <tbody>${rows}</tbody></table>`;
    const form = this.root.querySelector("#new-route");
    if (form) form.onsubmit = (e) => { e.preventDefault(); this.add(new FormData(form)); };
  }

  async add(data) {
    const body = { route_id: data.get("route_id").trim(), short_name: data.get("short_name"),
      color: data.get("color").replace("#", "") };
    if (data.get("long_name")) body.long_name = data.get("long_name");
    try {
      const r = await api("/v1/routes", { method: "POST", body });
      await this.render(`Added route ${r.short_name || r.route_id}.`);
    } catch (err) { this.msg(`Could not add the route: ${err.message}`); }
  }

  async _act(e) {
    const b = e.target.closest("[data-act]");
    if (!b) return;
    const id = b.dataset.id;
    const path = `/v1/routes/${encodeURIComponent(id)}`;
    try {
      if (b.dataset.act === "save") {
        const tr = b.closest("tr");
        const val = (f) => tr.querySelector(`[data-field=${f}]`).value;
        const body = { short_name: val("short_name") || null, long_name: val("long_name") || null };
        const colour = tr.querySelector("[data-field=color]");
        // A route without a colour keeps none unless one is picked (the picker cannot be empty).
        if (colour.dataset.had || colour.value.toLowerCase() !== "#0b57d0") body.color = colour.value.replace("#", "");
        await api(path, { method: "PATCH", body });
        await this.render(`Saved route ${id}.`);
      } else if (b.dataset.act === "try-edit") {
        // The server is the one who says no (and why): ask it, show its reason.
        await api(path, { method: "PATCH", body: {} });
        await this.render();
      } else if (b.dataset.act === "delete") {
        if (!confirm(`Delete route ${id}? Vehicles assigned to it keep the id until changed.`)) return;
        await api(path, { method: "DELETE" });
        await this.render(`Deleted route ${id}.`);
      }
    } catch (err) { this.msg(`Route ${id} not changed: ${err.message}`); }
  }
}
