// What survives a lost connection: the service worker keeps the app's files
// (sw.js), and this keeps the last buses the rider saw, with their times, in
// the Cache API, so an offline start shows them with their age.
const CACHE = "bustracker-rider-data";
const KEY = "/rider/last-view.json";

export function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/sw.js").catch(() => {});
}

export async function saveView(buses) {
  if (!("caches" in window)) return;
  const cache = await caches.open(CACHE);
  const body = JSON.stringify({ saved: Date.now(), buses });
  await cache.put(KEY, new Response(body, { headers: { "Content-Type": "application/json" } }));
}

export async function loadView() {
  if (!("caches" in window)) return null;
  try {
    const cache = await caches.open(CACHE);
    const response = await cache.match(KEY);
    return response ? (await response.json()).buses : null;
  } catch {
    return null;
  }
}
