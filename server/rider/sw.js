// The rider app's service worker: keeps the app's files so it starts offline.
// The server writes VERSION (a hash of every file below) and SHELL when it serves
// this file, so any change to the app installs a new worker and a fresh cache.
const VERSION = "__VERSION__";
const SHELL = __SHELL__;
const CACHE = `bustracker-rider-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("bustracker-rider-") && name !== CACHE && name !== "bustracker-rider-data") {
        await caches.delete(name);
      }
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== location.origin) return; // tiles: the network's
  if (request.mode === "navigate" && url.pathname === "/") {
    // The page: fresh when the network answers, the kept copy when it does not.
    event.respondWith(fetch(request).catch(() => caches.match("/", { cacheName: CACHE })));
    return;
  }
  if (SHELL.includes(url.pathname)) {
    // The app's files: the network first (they revalidate cheaply), the cache offline.
    event.respondWith(fetch(request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
      }
      return response;
    }).catch(() => caches.match(url.pathname, { cacheName: CACHE })));
  }
  // Live data (/v1/…, /ws) is never answered from here: the page keeps its own last view.
});
