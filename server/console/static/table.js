// The fleet table: every vehicle's state in words, sortable, filterable, offline first.
import { STATE_ORDER, ago, kmh, label, route, stateWords } from "./fleet.js";
import { routeChip, routeName } from "./routes.js";

const MAX_ROWS = 1000; // past this, filter: a table of 10,000 rows helps nobody
const KEYS = {
  label: (v) => label(v).toLowerCase(),
  state: (v) => STATE_ORDER.indexOf(stateWords(v)),
  last_seen: (v) => -(Date.parse(v.last_seen || "") || 0),
  speed: (v) => v.speed ?? -1,
  route: (v) => routeName(route(v)).toLowerCase(),
  backlog: (v) => v.backlog ?? -1,
  agent_version: (v) => v.agent_version || "",
};

export const COLUMNS = ["label", "state", "last_seen", "speed", "route", "backlog", "agent_version"];

export function cells(v) {
  return [label(v), stateWords(v), ago(v.last_seen), kmh(v.speed), routeName(route(v)),
    v.backlog == null ? "" : String(v.backlog), v.agent_version || ""];
}

export class FleetTable {
  constructor(fleet, root, onOpen) {
    this.fleet = fleet; this.root = root; this.onOpen = onOpen;
    this.sort = "state"; this.dir = 1; this.filter = "";
    this.body = root.querySelector("tbody");
    root.querySelectorAll("th button").forEach((b) => b.addEventListener("click", () => {
      const key = b.dataset.sort;
      this.dir = this.sort === key ? -this.dir : 1;
      this.sort = key;
      this.render();
    }));
    this.body.addEventListener("click", (e) => this._open(e));
    this.body.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this._open(e); } });
  }

  _open(e) {
    const tr = e.target.closest("tr[data-id]");
    if (tr) this.onOpen(Number(tr.dataset.id));
  }

  rows() {
    const f = this.filter.trim().toLowerCase();
    let list = [...this.fleet.vehicles.values()];
    // The route's id too: an operator may know a route by either.
    if (f) list = list.filter((v) => `${cells(v).join(" ")} ${route(v)}`.toLowerCase().includes(f));
    const key = KEYS[this.sort];
    const byLabel = KEYS.label;
    list.sort((a, b) => {
      const ka = key(a), kb = key(b);
      if (ka < kb) return -this.dir;
      if (ka > kb) return this.dir;
      const la = byLabel(a), lb = byLabel(b);
      return la < lb ? -1 : la > lb ? 1 : 0;
    });
    return list;
  }

  render() {
    const list = this.rows();
    this.root.querySelectorAll("th").forEach((th) => {
      const key = th.querySelector("button").dataset.sort;
      th.setAttribute("aria-sort", key === this.sort ? (this.dir > 0 ? "ascending" : "descending") : "none");
    });
    const focused = document.activeElement?.closest?.("tr[data-id]")?.dataset.id;
    const html = [];
    for (const v of list.slice(0, MAX_ROWS)) {
      const c = cells(v).map((x) => String(x).replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`));
      html.push(`<tr data-id="${v.device_id}" tabindex="0"><td>${c[0]}</td>` +
        `<td class="state state-${c[1]}">${c[1]}</td><td>${c[2]}</td><td>${c[3]}</td>` +
        `<td>${routeChip(route(v))}</td><td>${c[5]}</td><td>${c[6]}</td></tr>`);
    }
    this.body.innerHTML = html.join("");
    if (focused) this.body.querySelector(`tr[data-id="${focused}"]`)?.focus();
    return list.length;
  }

  csv() {
    const head = ["vehicle", "state", "last_seen", "speed_kmh", "route", "route_name", "backlog", "agent_version",
      "lat", "lon"];
    const quote = (x) => (/[",\n]/.test(String(x)) ? `"${String(x).replace(/"/g, '""')}"` : String(x));
    const lines = [head.join(",")];
    for (const v of this.rows()) {
      lines.push([label(v), stateWords(v), v.last_seen || "", v.speed == null ? "" : (v.speed * 3.6).toFixed(1),
        route(v), routeName(route(v)), v.backlog ?? "", v.agent_version || "", v.lat ?? "", v.lon ?? ""].map(quote).join(","));
    }
    return `${lines.join("\n")}\n`;
  }
}
