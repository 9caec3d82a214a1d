// The rider app: wires the live fleet, the map, the list, stops and the offline view.
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

const map = new BusMap($("map"), {
  tiles: meta("bt-tiles"),
  attribution: meta("bt-attribution"),
  onStop: (id) => { location.hash = `#stop/${encodeURIComponent(id)}`; },
});

function routeName(id) {
  return id ? t("route_n", { route: knownRoutes.get(id) || id }) : t("no_route");
}

function describe(bus, age, stale) {
  const text = t("bus_summary", { route: routeName(bus.route_id), label: bus.label, age: ageText(age) });
  return stale ? `${text} (${t("stale")})` : text;
}

function renderList(items) {
  const list = $("buses");
  const rows = items.map(({ bus, age, stale }) => {
    const li = document.createElement("li");
    li.className = stale ? "bus stale" : "bus";
    li.dataset.bus = bus.id;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = bus.route_id || "•";
    badge.setAttribute("aria-hidden", "true");
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
  const signature = items.map(({ bus, stale }) => `${bus.id}:${stale}`).join(",");
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
  map.show(items, describe);
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

async function chooseRoute(id) {
  route = id;
  live.setRoute(id);
  render();
  if (!id) return map.clearRoute();
  try {
    const { shapes, stops } = await transit.route(id);
    if (route === id) map.showRoute(shapes, stops, (s) => t("stop_on_route", { name: s.name }));
  } catch {
    map.clearRoute(); // no route data (yet): buses still show
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
  list.replaceChildren(...stops.map((s) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `#stop/${encodeURIComponent(s.stop_id)}`;
    a.textContent = s.name;
    li.append(a);
    if (s.distance_m != null) li.append(` · ${t("distance_m", { n: Math.round(s.distance_m) })}`);
    return li;
  }));
}

async function showStop(id) {
  $("live-view").hidden = true;
  $("stop-view").hidden = false;
  const title = $("stop-name");
  const list = $("arrivals");
  title.textContent = id;
  list.replaceChildren();
  title.focus();
  try {
    const stop = await transit.stop(id);
    title.textContent = stop.name;
    const rows = stop.coming.map((c) => {
      const li = document.createElement("li");
      const when = c.eta_s == null ? "" : c.eta_s < 60 ? t("arrival_due")
        : t("arrival_min", { n: Math.round(c.eta_s / 60) });
      li.textContent = [routeName(c.route_id), c.label, when].filter(Boolean).join(" · ");
      return li;
    });
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
    for (const r of list) knownRoutes.set(r.route_id, r.name);
    renderRoutes();
  }).catch(() => {});
  document.body.dataset.ready = language();
}

main();
