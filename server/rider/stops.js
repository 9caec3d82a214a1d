// Public transit reads (routes, a route's shape and stops, stops near the rider,
// a stop's coming buses). The readers accept the few shapes the API contract
// allows (a list, or the list under a key), so the page does not break on them.
async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function listOf(body, ...keys) {
  if (Array.isArray(body)) return body;
  for (const key of keys) if (body && Array.isArray(body[key])) return body[key];
  return [];
}

function point(p) {
  return Array.isArray(p) ? [Number(p[0]), Number(p[1])] : [Number(p.lat), Number(p.lon)];
}

export async function routes() {
  return listOf(await getJSON("/v1/routes"), "routes").map((r) => ({
    route_id: String(r.route_id ?? r.id),
    short: r.short_name || "",
    color: r.color || null,
    text_color: r.text_color || null,
    name: [r.short_name, r.long_name].filter(Boolean).join(" · ") || String(r.route_id ?? r.id),
  }));
}

export async function route(routeId) {
  const body = await getJSON(`/v1/routes/${encodeURIComponent(routeId)}`);
  const shapes = listOf(body, "shapes").map((s) => listOf(s, "points", "coordinates").map(point));
  return { shapes: shapes.filter((s) => s.length > 1), stops: listOf(body, "stops").map(stopOf) };
}

function stopOf(s) {
  return {
    stop_id: String(s.stop_id ?? s.id),
    name: s.name ?? s.stop_name ?? String(s.stop_id ?? s.id),
    lat: Number(s.lat),
    lon: Number(s.lon),
    distance_m: s.distance_m,
  };
}

export async function near(lat, lon, limit = 5) {
  const query = new URLSearchParams({ lat: String(lat), lon: String(lon), limit: String(limit) });
  return listOf(await getJSON(`/v1/stops/near?${query}`), "stops").map(stopOf);
}

export async function stop(stopId) {
  const body = await getJSON(`/v1/stops/${encodeURIComponent(stopId)}`);
  // Soonest first, each as riders see a bus (public id, label, route, t, state) with
  // eta_s (null: no time known) and distance_m (along the route, or straight: distance_kind).
  const coming = listOf(body, "buses").map((bus) => ({ ...bus, route_id: bus.route_id ?? "" }));
  return { ...stopOf(body.stop ?? body), coming };
}

export function here() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) return reject(new Error("no geolocation"));
    navigator.geolocation.getCurrentPosition(
      (p) => resolve([p.coords.latitude, p.coords.longitude]),
      reject,
      { enableHighAccuracy: false, timeout: 15000, maximumAge: 60000 },
    );
  });
}
