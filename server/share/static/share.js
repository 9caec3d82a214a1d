// One shared vehicle, refreshed every few seconds until its link expires or is revoked.
/* global L */
const EVERY_MS = 5000;
const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const $ = (s) => document.querySelector(s);
let map, marker, timer = 0, centred = false;

async function mapSettings() {
  try { return await (await fetch("/v1/map")).json(); } catch { return {}; }
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 90 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function stop(message) {
  clearInterval(timer);
  $("#status").textContent = message;
  $("#status").classList.add("gone");
  if (marker) { marker.remove(); marker = null; }
}

async function poll() {
  let r;
  try { r = await fetch(`/v1/shared/${encodeURIComponent(token)}`); } catch { $("#status").textContent = "no connection; retrying…"; return; }
  if (r.status === 404) return stop("This share link is not valid (it may have been revoked).");
  if (r.status === 410) return stop("This share link has expired.");
  if (!r.ok) { $("#status").textContent = `the server answered ${r.status}; retrying…`; return; }
  const v = await r.json();
  $("#label").textContent = v.label || "Shared bus";
  document.title = `${v.label || "Shared bus"} – bustracker`;
  const until = new Date(v.expires_at).toLocaleString();
  if (v.lat == null) { $("#status").textContent = `No current position. Link valid until ${until}.`; return; }
  const where = [v.lat, v.lon];
  if (!marker) marker = L.circleMarker(where, { radius: 10, color: "#fff", weight: 3, fillColor: v.state === "online" ? "#1b7a34" : "#b3261e", fillOpacity: 1 }).addTo(map);
  marker.setLatLng(where);
  marker.setStyle({ fillColor: v.state === "online" ? "#1b7a34" : "#b3261e" });
  if (!centred) { map.setView(where, 15); centred = true; } else if (!map.getBounds().contains(where)) map.panTo(where);
  const route = v.route_id || v.route;
  $("#status").textContent = `${v.state}${route ? `, route ${route}` : ""}, position ${ago(v.t)}. Link valid until ${until}.`;
}

const settings = await mapSettings();
map = L.map("map").setView([20, 0], 2);
if (settings.tile_url) {
  const tiles = L.tileLayer(settings.tile_url, { maxZoom: 19, attribution: settings.attribution || "" }).addTo(map);
  tiles.on("tileerror", () => map.getContainer().classList.add("no-tiles"));
} else map.getContainer().classList.add("no-tiles");
window.bustracker = { get marker() { return marker; } };
await poll();
timer = setInterval(poll, EVERY_MS);
