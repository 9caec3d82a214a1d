// The rider app: wires the live fleet, the map, the list, stops and the offline view.
import { badgeColours, paint } from "./colours.js";
import { Fleet } from "./fleet.js";
import { ageText, language, load, preferred, t } from "./i18n.js";
import { Live } from "./live.js";
import { BusMap } from "./map.js";
import { loadView, registerWorker, saveView } from "./offline.js";
import * as transit from "./stops.js";

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";

const fleet = new Fleet();
let route = "";
let status = "connecting";
let everything = false; // offline with no live data: show every last known bus
const knownRoutes = new Map(); // route_id -> name
const shortNames = new Map(); // route_id -> what the badge shows (GTFS short name)
const routeColours = new Map(); // route_id -> badge colours that pass WCAG AA

const map = new BusMap($("map"), {
  tiles: meta("bt-tiles"),
  attribution: meta("bt-attribution"),
  onStop: (id) => { location.hash = `#stop/${encodeURIComponent(id)}`; },
});

function distanceText(m) {
  if (m < 1000) return t("distance_m", { n: Math.round(m) });
  return t("distance_km", { n: (m / 1000).toLocaleString(language(), { maximumFractionDigits: 1 }) });
}

function badgeText(id) {
  return shortNames.get(id) || id || "•";
}

function routeName(id) {
  return id ? t("route_n", { route: knownRoutes.get(id) || id }) : t("no_route");
}

function describe(bus, age, stale) {
  const text = t("bus_summary", { route: routeName(bus.route_id), label: bus.label, age: ageText(age) });
  if (!stale) return text;
  return `${text} (${t(everything ? "last_known" : "stale")})`;
}

function renderList(items) {
  const list = $("buses");
  const rows = items.map(({ bus, age, stale }) => {
    const li = document.createElement("li");
    li.className = stale ? "bus stale" : "bus";
    li.dataset.bus = bus.id;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = badgeText(bus.route_id);
    badge.setAttribute("aria-hidden", "true");
    if (!stale) paint(badge, routeColours.get(bus.route_id));
    const text = document.createElement("span");
    text.className = "what";
    text.textContent = describe(bus, age, stale);
    const show = document.createElement("button");
    show.type = "button";
    show.className = "show";
    show.textContent = t("map");
    show.setAttribute("aria-label", t("show_on_map", { label: bus.label }));
    show.addEventListener("click", () => map.focus(bus));
    li.append(badge, text, show);
    return li;
  });
  // Replace only when something changed, so focus on a button is not lost every second.
  // Badge text and colours too: the routes list may arrive after the buses.
  const signature = items.map(({ bus, stale }) =>
    `${bus.id}:${stale}:${badgeText(bus.route_id)}:${routeColours.get(bus.route_id)?.background || ""}`).join(",");
  if (list.dataset.signature !== signature) {
    list.replaceChildren(...rows);
    list.dataset.signature = signature;
  } else {
    rows.forEach((row, i) => {
      list.children[i].querySelector(".what").textContent = row.querySelector(".what").textContent;
    });
  }
  $("no-buses").hidden = items.length > 0;
}

function renderStatus(count) {
  const key = { live: "status_live", connecting: "status_connecting",
    reconnecting: "status_reconnecting", offline: "status_offline" }[status];
  const text = t(key, { n: count });
  const el = $("status");
  if (el.textContent !== text) el.textContent = text;
  el.className = status === "live" ? "status" : "status warn";
}

function render() {
  const items = fleet.visible(route, Date.now(), everything);
  map.show(items, describe, badgeText, (id) => routeColours.get(id));
  renderList(items);
  renderStatus(items.length);
}

function renderRoutes() {
  for (const id of fleet.routes()) if (!knownRoutes.has(id)) knownRoutes.set(id, id);
  const select = $("route");
  const wanted = ["", ...[...knownRoutes.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))];
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") === wanted.join("\n")) return;
  const options = wanted.map((id) => {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = id ? routeName(id) : t("all_routes");
    return option;
  });
  select.replaceChildren(...options);
  select.value = route;
}

let saveTimer = null;
function saveSoon() {
  if (saveTimer !== null) return;
  saveTimer = setTimeout(() => {
    saveTimer = null;
    saveView(fleet.toJSON()).then(() => { document.body.dataset.saved = String(Date.now()); });
  }, 500);
}

const live = new Live({
  onFrame(frame) {
    if (frame.type === "snapshot" || frame.type === "update" || frame.type === "state") {
      everything = false;
      fleet.apply(frame);
      renderRoutes();
      render();
      saveSoon();
    }
  },
  onStatus(next) {
    status = next;
    if (next === "offline" && fleet.buses.size) everything = true;
    render();
  },
});

function stopLinks(stops) {
  return stops.map((s) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `#stop/${encodeURIComponent(s.stop_id)}`;
    a.textContent = s.name;
    li.append(a);
    if (s.distance_m != null) li.append(` · ${distanceText(s.distance_m)}`);
    return li;
  });
}

function showRouteStops(id, stops) {
  const title = $("route-stops-title");
  const list = $("route-stops");
  title.hidden = list.hidden = !stops.length;
  title.textContent = stops.length ? t("route_stops", { route: routeName(id) }) : "";
  list.replaceChildren(...stopLinks(stops));
}

async function chooseRoute(id) {
  route = id;
  live.setRoute(id);
  render();
  showRouteStops(id, []);
  if (!id) return map.clearRoute();
  try {
    const { shapes, stops } = await transit.route(id);
    if (route !== id) return;
    map.showRoute(shapes, stops, (s) => t("stop_on_route", { name: s.name }));
    // The same stops as links: the map's dots are not reachable by keyboard.
    showRouteStops(id, stops);
  } catch {
    map.clearRoute(); // no route data: the buses still show
  }
}

async function findStops() {
  const list = $("stops");
  const say = (key) => {
    const li = document.createElement("li");
    li.textContent = t(key);
    list.replaceChildren(li);
  };
  say("locating");
  let where;
  try {
    where = await transit.here();
  } catch {
    return say("no_location");
  }
  let stops;
  try {
    stops = await transit.near(where[0], where[1]);
  } catch {
    return say("stops_unavailable");
  }
  if (!stops.length) return say("no_stops");
  list.replaceChildren(...stopLinks(stops));
}

let stopTimer = null;

// When the bus is due: whole minutes rounded down, so a rider is never told a later
// time than the estimate; under a minute is "Due". Null: no time, only the distance.
function etaText(seconds) {
  if (seconds == null) return "";
  const min = Math.floor(Math.max(0, seconds) / 60);
  if (min < 1) return t("eta_due");
  if (min < 60) return t("eta_min", { n: min });
  return t("eta_h", { h: Math.floor(min / 60), m: min % 60 });
}

function arrivalText(bus) {
  const known = fleet.buses.get(bus.id);
  const age = known ? fleet.age(known) : (Date.now() - Date.parse(bus.t)) / 1000;
  const parts = [routeName(bus.route_id), bus.label];
  if (bus.distance_m != null) {
    const straight = bus.distance_kind === "straight_line";
    parts.push(straight ? t("distance_straight", { d: distanceText(bus.distance_m) }) : distanceText(bus.distance_m));
  }
  parts.push(ageText(age));
  return parts.join(" · ");
}

function arrivalRow(bus) {
  const li = document.createElement("li");
  li.className = bus.state === "offline" ? "arrival stale" : "arrival";
  const when = etaText(bus.eta_s);
  if (when) {
    const eta = document.createElement("span");
    eta.className = "eta";
    eta.textContent = when;
    li.append(eta);
  }
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = arrivalText(bus);
  li.append(what);
  return li;
}

async function showStop(id, first = true) {
  $("live-view").hidden = true;
  $("stop-view").hidden = false;
  const title = $("stop-name");
  const list = $("arrivals");
  if (first) {
    title.textContent = id;
    list.replaceChildren();
    title.focus();
  }
  clearTimeout(stopTimer);
  // The buses coming change as they drive: read the stop again while it is shown.
  stopTimer = setTimeout(() => showStop(id, false), 10000);
  try {
    const stop = await transit.stop(id);
    title.textContent = stop.name;
    const rows = stop.coming.map(arrivalRow);
    if (!rows.length) {
      const li = document.createElement("li");
      li.textContent = t("none_coming");
      rows.push(li);
    }
    list.replaceChildren(...rows);
  } catch {
    const li = document.createElement("li");
    li.textContent = t("stops_unavailable");
    list.replaceChildren(li);
  }
}

function onHash() {
  const m = location.hash.match(/^#stop\/(.+)$/);
  if (m) return showStop(decodeURIComponent(m[1]));
  clearTimeout(stopTimer);
  $("stop-view").hidden = true;
  $("live-view").hidden = false;
}

async function main() {
  const lang = preferred();
  $("lang").value = lang;
  await load(lang).catch(() => load("en"));
  $("lang").addEventListener("change", async (e) => {
    await load(e.target.value, true);
    renderRoutes();
    [...$("route").options].forEach((o) => { o.textContent = o.value ? routeName(o.value) : t("all_routes"); });
    render();
  });
  $("route").addEventListener("change", (e) => chooseRoute(e.target.value));
  $("near").addEventListener("click", findStops);
  window.addEventListener("hashchange", onHash);
  // The last view first, so a slow or absent connection still shows something at once.
  const saved = await loadView();
  if (saved && !fleet.buses.size) {
    fleet.restore(saved);
    renderRoutes();
  }
  render();
  live.start();
  setInterval(render, 1000);
  onHash();
  registerWorker();
  transit.routes().then((list) => {
    for (const r of list) {
      knownRoutes.set(r.route_id, r.name);
      if (r.short) shortNames.set(r.route_id, r.short);
      const colours = badgeColours(r);
      if (colours) routeColours.set(r.route_id, colours);
    }
    renderRoutes();
  }).catch(() => {});
  document.body.dataset.ready = language();
}

main();
