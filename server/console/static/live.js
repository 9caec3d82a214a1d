// The operator live stream (docs/live.md) over WebSocket, reconnecting with `since`.
// The server closes with 4401 when the access token expires: the stream then
// reconnects with the renewed token and loses nothing (since = last frame's `at`).
import { accessToken, refresh, signedIn } from "./api.js";

export class LiveStream extends EventTarget {
  constructor() { super(); this.ws = null; this.since = null; this.retry = 500; this.stopped = false; this.status = "connecting"; }

  start() { this.stopped = false; this.connect(); }

  stop() { this.stopped = true; if (this.ws) this.ws.close(1000); this.ws = null; }

  setStatus(status) { this.status = status; this.dispatchEvent(new CustomEvent("status", { detail: status })); }

  connect() {
    if (this.stopped || !signedIn()) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ token: accessToken() });
    if (this.since) q.set("since", this.since);
    const ws = new WebSocket(`${proto}//${location.host}/ws?${q}`);
    this.ws = ws;
    ws.onopen = () => { this.retry = 500; this.setStatus("live"); };
    ws.onmessage = (m) => {
      const frame = JSON.parse(m.data);
      if (frame.at) this.since = frame.at;
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    };
    ws.onclose = async (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.setStatus(e.code === 4401 ? "renewing sign-in" : "reconnecting");
      if (e.code === 4401) {
        try { await refresh(); } catch { return; }
        this.connect();
        return;
      }
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }
}
