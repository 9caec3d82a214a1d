// The operator's session: sign-in, access token renewed before it expires, API calls.
const KEY = "bustracker.console.session";

export const session = new EventTarget();
let state = null;
try { state = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { state = null; }
let timer = 0;
let refreshing = null;

export class ApiError extends Error {
  constructor(status, reason) { super(reason); this.status = status; }
}

function claims(jwt) {
  try {
    return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch { return {}; }
}

function adopt(pair) {
  const c = claims(pair.access_token);
  state = {
    access: pair.access_token, refresh: pair.refresh_token,
    expiresAt: Date.now() + pair.expires_in * 1000, lifetime: pair.expires_in * 1000,
    username: c.name || c.username || state?.username || "", role: c.role || "viewer",
  };
  sessionStorage.setItem(KEY, JSON.stringify(state));
  schedule();
  session.dispatchEvent(new Event("token"));
}

function schedule() {
  clearTimeout(timer);
  if (!state) return;
  // Renew when three quarters of the token's life are gone, so a slow answer still lands in time.
  const due = state.expiresAt - state.lifetime / 4 - Date.now();
  timer = setTimeout(() => refresh().catch(() => {}), Math.max(0, due));
}

export const signedIn = () => state !== null;
export const accessToken = () => state?.access ?? null;
export const username = () => state?.username ?? "";
export const role = () => state?.role ?? "viewer";
export const can = (needed) =>
  ["viewer", "operator", "admin"].indexOf(role()) >= ["viewer", "operator", "admin"].indexOf(needed);

export async function login(name, password) {
  const r = await fetch("/v1/auth/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body.error || `sign-in failed (${r.status})`);
  state = { username: name };
  adopt(body);
}

export function signOut(reason = "") {
  clearTimeout(timer);
  state = null;
  sessionStorage.removeItem(KEY);
  session.dispatchEvent(new CustomEvent("signedout", { detail: reason }));
}

// A call that answers with a new token pair (a password change) and ends this
// sign-in's old tokens: a renewal meanwhile would replay the old refresh token and
// be refused, so it waits for the new pair instead.
let replacing = null;
export async function withNewTokens(call) {
  const pending = call();
  replacing = pending.catch(() => {});
  try { adopt(await pending); } finally { replacing = null; }
}

export function refresh() {
  if (replacing) return replacing;
  if (!refreshing) {
    refreshing = (async () => {
      const r = await fetch("/v1/auth/refresh", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: state?.refresh }),
      });
      if (!r.ok) { signOut("Your session ended; sign in again."); throw new ApiError(r.status, "session ended"); }
      adopt(await r.json());
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

function send(path, opts) {
  const headers = { ...(opts.headers || {}), Authorization: `Bearer ${state?.access}` };
  let body = opts.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body); headers["Content-Type"] = "application/json";
  }
  return fetch(path, { ...opts, headers, body });
}

// One call with this sign-in: renewed once and sent again if the token had expired.
async function authed(path, opts) {
  const r = await send(path, opts);
  if (r.status !== 401 || !state) return r;
  await refresh();
  return send(path, opts);
}

const refusal = (r, body) => new ApiError(r.status, body?.error || `${r.status} ${r.statusText}`);

// A file the API answers (a track's GPX): fetched with this sign-in, as an <a href>
// cannot be, and saved under the name the server gives it. Returns that name.
export async function download(path) {
  const r = await authed(path, {});
  if (!r.ok) throw refusal(r, await r.json().catch(() => null));
  const name = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "")?.[1] || "download";
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  return name;
}

export async function api(path, opts = {}) {
  const r = await authed(path, opts);
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw refusal(r, body);
  return body;
}

if (state) {
  if (Date.now() < state.expiresAt) schedule(); else refresh().catch(() => {});
}
