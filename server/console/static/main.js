// The console: sign-in, then the live map, fleet table, detail and admin panels.
/* global L */
import { DevicesPanel, VehiclesPanel } from "./admin.js";
import { AuditPanel } from "./audit.js";
import { api, can, login, session, signOut, signedIn, username, role } from "./api.js";
import { Detail } from "./detail.js";
import { Fleet, route } from "./fleet.js";
import { LiveStream } from "./live.js";
import { RoutesPanel, loadRoutes, routeColour, routesChanged } from "./routes.js";
import { FleetTable } from "./table.js";
import { AccountPanel, UsersPanel } from "./users.js";
import { VehicleLayer } from "./vehicle-layer.js";

const $ = (sel) => document.querySelector(sel);
const fleet = new Fleet();
const live = new LiveStream();
let map, layer, table, detail, devices, vehicles, routesPanel, users, audit, account, settings;
let view = "map";
const ADMIN_VIEWS = ["users", "audit"];
let tableDirty = true;
let fitted = false;

async function mapSettings() {
  try { return await (await fetch("/v1/map")).json(); } catch { return { tile_url: null, offline_after_s: 120 }; }
}

function buildMap() {
  map = L.map("map", { preferCanvas: true, zoomControl: true, worldCopyJump: true }).setView([20, 0], 2);
  const el = map.getContainer();
  if (settings.tile_url) {
    const tiles = L.tileLayer(settings.tile_url, { maxZoom: 19, attribution: settings.attribution || "" });
    // No network (a depot, a test): a plain background instead of grey holes.
    tiles.on("tileerror", () => el.classList.add("no-tiles"));
    tiles.on("tileload", () => el.classList.remove("no-tiles"));
    tiles.addTo(map);
  } else el.classList.add("no-tiles");
  layer = new VehicleLayer({ outline: (v) => routeColour(route(v)) }).addTo(map);
  layer.on("vehicleclick", (e) => openDetail(e.id));
}

function fitFleet() {
  const pts = [...fleet.vehicles.values()].filter((v) => v.lat != null).map((v) => [v.lat, v.lon]);
  if (!pts.length) return;
  map.fitBounds(L.latLngBounds(pts), { padding: [40, 40], maxZoom: 15 });
  fitted = true;
}

function openDetail(id) {
  detail.open(id);
  $("#detail").querySelector("button")?.focus();
}

function renderCounts() {
  const c = fleet.counts();
  const items = [["vehicles", "Vehicles"], ["online", "Online"], ["offline", "Offline"], ["no_gps", "No GPS"],
    ["out_of_service", "Out of service"], ["auth_error", "Auth errors"]];
  $("#counts").innerHTML = items.filter(([k]) => k === "vehicles" || k === "online" || k === "offline" || c[k])
    .map(([k, name]) => `<li data-count="${k}">${name}<b>${c[k] || 0}</b></li>`).join("");
}

function tick() {
  renderCounts();
  if (view === "fleet" && tableDirty) {
    const n = table.render();
    $("#shown").textContent = n > 1000 ? `showing 1,000 of ${n}: filter to narrow` : `${n} shown`;
    tableDirty = false;
  }
  if (detail.id != null) detail.refresh();
}

function show(name) {
  view = name;
  document.querySelectorAll("[role=tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === name)));
  document.querySelectorAll(".view").forEach((s) => { s.hidden = s.id !== `view-${name}`; });
  if (name === "map") map.invalidateSize();
  if (name === "fleet") {
    tableDirty = true; tick();
    // Routes added or renamed since (another operator, the feed): the table shows them by name.
    loadRoutes().catch(() => { /* the names it has */ });
  }
  const panel = { devices, vehicles, routes: routesPanel, users, audit, account }[name];
  if (panel) {
    // Busy until the panel has read the API: what shows before is the last visit's.
    const el = $(`#view-${name}`);
    el.setAttribute("aria-busy", "true");
    Promise.resolve(panel.render()).finally(() => el.removeAttribute("aria-busy"));
  }
}

async function start() {
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#who").textContent = `${username()} (${role()})`;
  // Only admins manage accounts and read the audit log (the API says so too); others do not
  // see the tabs.
  for (const v of ADMIN_VIEWS) document.querySelector(`[role=tab][data-view=${v}]`).hidden = !can("admin");
  if (!map) {
    buildMap();
    table = new FleetTable(fleet, $("#fleet"), openDetail);
    detail = new Detail($("#detail"), fleet, map, layer, settings, () => { if (view !== "map") show("map"); });
    devices = new DevicesPanel($("#view-devices"));
    vehicles = new VehiclesPanel($("#view-vehicles"));
    routesPanel = new RoutesPanel($("#view-routes"));
    users = new UsersPanel($("#view-users"));
    audit = new AuditPanel($("#view-audit"));
    account = new AccountPanel($("#view-account"));
    routesChanged.addEventListener("change", () => {
      tableDirty = true;
      for (const v of fleet.vehicles.values()) layer.upsert(v);
    });
    $("#filter").addEventListener("input", (e) => { table.filter = e.target.value; tableDirty = true; tick(); });
    $("#export").addEventListener("click", () => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([table.csv()], { type: "text/csv" }));
      a.download = `fleet-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.csv`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    });
    document.querySelectorAll("[role=tab]").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && detail.id != null) detail.close(); });
    setInterval(tick, 1000);
  }
  if (ADMIN_VIEWS.includes(view) && !can("admin")) show("map");
  loadRoutes().catch(() => { /* no colours: the table shows route ids */ });
  try {
    fleet.load((await api("/v1/fleet/live")).vehicles);
  } catch { /* the stream's snapshot fills in */ }
  live.start();
}

fleet.addEventListener("reset", () => {
  layer.clear();
  for (const v of fleet.vehicles.values()) layer.upsert(v);
  if (!fitted) fitFleet();
  tableDirty = true;
  countsSoon();
});
let countsDue = 0;
function countsSoon() {
  if (!countsDue) countsDue = requestAnimationFrame(() => { countsDue = 0; renderCounts(); });
}
fleet.addEventListener("vehicles", (e) => {
  for (const v of e.detail) layer.upsert(v);
  tableDirty = true;
  countsSoon();
  if (!fitted) fitFleet();
});
fleet.addEventListener("removed", (e) => { layer.remove(e.detail); tableDirty = true; });
// A state change (a bus gone offline: revoked? refused?) is when the details the
// stream does not carry matter; read them again, once for a burst of changes.
let reread = 0;
const REREAD_EVERY_MS = 30000;
function rereadSoon(delay = 1000) {
  if (reread) return;
  reread = setTimeout(async () => {
    reread = 0;
    try { fleet.merge((await api("/v1/fleet/live")).vehicles); } catch { /* next time */ }
  }, delay);
}
setInterval(() => { if (signedIn()) rereadSoon(0); }, REREAD_EVERY_MS);
live.addEventListener("frame", (e) => {
  fleet.apply(e.detail);
  if (e.detail.type === "state") rereadSoon();
});
live.addEventListener("status", (e) => { $("#link").textContent = e.detail; });
session.addEventListener("signedout", (e) => {
  live.stop();
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = e.detail || "";
});

$("#signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#signin-error").textContent = "";
  try {
    await login($("#username").value, $("#password").value);
    $("#password").value = "";
    await start();
  } catch (err) { $("#signin-error").textContent = err.message; }
});
$("#signout").addEventListener("click", () => signOut());

// For the browser tests and the bench: the page's live state, read-only use.
window.bustracker = { fleet, live, get layer() { return layer; }, get map() { return map; } };

settings = await mapSettings();
if (signedIn()) start(); else { $("#signin").hidden = false; $("#username").focus(); }
