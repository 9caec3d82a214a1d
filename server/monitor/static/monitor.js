// The wallboard: counts from the live stream, the rest from /v1/fleet/summary.
import { api, login, session, signedIn } from "/console/api.js";
import { Fleet, ago, label } from "/console/fleet.js";
import { LiveStream } from "/console/live.js";

const $ = (s) => document.querySelector(s);
const ALERT_SHARE = 0.1; // the seed plan's alert: more than 10% of the fleet offline
const SUMMARY_EVERY_MS = 10000;
const DARK_SHOWN = 10; // past this the list says how many more, so the tiles stay on screen
const fleet = new Fleet();
const live = new LiveStream();
let summary = null;
let fixTimes = []; // arrival times of position changes seen on the stream, last minute

const esc = (x) => String(x ?? "").replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);

function list(el, items, text, most = Infinity) {
  const shown = items.slice(0, most).map((i) => `<li>${esc(text(i))}</li>`);
  if (items.length > most) shown.push(`<li class="none">and ${items.length - most} more</li>`);
  el.innerHTML = shown.length ? shown.join("") : `<li class="none">none</li>`;
}

// Which buses the Offline tile counts, the latest to go quiet first: that is the news.
function dark() {
  return [...fleet.vehicles.values()].filter((v) => v.state === "offline" || v.state === "no_gps")
    .sort((a, b) => String(b.last_seen || "").localeCompare(String(a.last_seen || "")));
}

function render() {
  const c = fleet.counts();
  const inService = c.vehicles - (c.out_of_service || 0);
  const offline = (c.offline || 0) + (c.no_gps || 0);
  $("#online").textContent = c.online || 0;
  $("#offline").textContent = offline;
  $("#total").textContent = c.vehicles;
  const now = Date.now();
  fixTimes = fixTimes.filter((t) => now - t < 60000);
  $("#fpm").textContent = summary?.fixes_per_minute != null ? Math.round(summary.fixes_per_minute) : fixTimes.length;
  const share = inService ? offline / inService : 0;
  const alert = $("#alert");
  alert.hidden = !(share > ALERT_SHARE);
  alert.textContent = `ALERT: ${Math.round(share * 100)}% of the fleet offline (${offline} of ${inService})`;
  list($("#dark"), dark(), (v) => `${label(v)}: ${v.state === "no_gps" ? "no GPS fix" : "offline"}, ` +
    (v.last_seen ? `last heard ${ago(v.last_seen, now)}` : "never heard from"), DARK_SHOWN);
  list($("#backlogs"), summary?.growing_backlogs || [], (b) => `${b.name}: ${b.backlog} fixes waiting (was ${b.previous})`);
  const auth = summary?.auth_errors || [...fleet.vehicles.values()].filter((v) => v.auth_error_at && v.state !== "online")
    .map((v) => ({ name: v.name, at: v.auth_error_at }));
  list($("#auth-errors"), auth, (a) => `${a.name}: refused since ${new Date(a.at).toLocaleTimeString()}`);
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.alert = String(!alert.hidden);
}

async function loadSummary() {
  try { summary = await api("/v1/fleet/summary"); } catch { summary = null; }
  render();
}

async function start() {
  $("#signin").hidden = true;
  $("#board").hidden = false;
  try { fleet.load((await api("/v1/fleet/live")).vehicles); } catch { /* the snapshot fills in */ }
  live.start();
  await loadSummary();
  setInterval(loadSummary, SUMMARY_EVERY_MS);
  setInterval(render, 1000);
}

live.addEventListener("frame", (e) => {
  const f = e.detail;
  if (f.type === "update") for (let i = 0; i < f.vehicles.length; i += 1) fixTimes.push(Date.now());
  fleet.apply(f);
  if (f.type !== "heartbeat") render();
});
live.addEventListener("status", (e) => { $("#link").textContent = e.detail; });
session.addEventListener("signedout", () => { live.stop(); $("#board").hidden = true; $("#signin").hidden = false; });
$("#signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await login($("#username").value, $("#password").value); await start(); }
  catch (err) { $("#signin-error").textContent = err.message; }
});

if (signedIn()) start(); else $("#signin").hidden = false;
