// The public live stream (/ws/public, docs/live.md): reconnects with `since`, changes
// its route filter with `subscribe`, and falls back to the cacheable snapshot
// (/v1/live/public) while the WebSocket is down.
const POLL_MS = 10000;

export class Live {
  constructor({ onFrame, onStatus }) {
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.route = "";
    this.since = null;
    this.retries = 0;
    this.socket = null;
    this.pollTimer = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams();
    if (this.route) query.set("routes", this.route);
    if (this.since) query.set("since", this.since);
    const q = query.toString();
    return `${scheme}//${location.host}/ws/public${q ? "?" + q : ""}`;
  }

  start() {
    this.onStatus("connecting");
    this.open();
  }

  open() {
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.retries = 0;
      this.stopPolling();
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.at) this.since = frame.at;
      if (frame.type === "snapshot") this.onStatus("live");
      this.onFrame(frame);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onStatus(navigator.onLine === false ? "offline" : "reconnecting");
      this.poll();
      const delay = Math.min(30000, 1000 * 2 ** this.retries++);
      setTimeout(() => this.open(), delay * (0.5 + Math.random() / 2));
    };
  }

  setRoute(route) {
    this.route = route;
    const socket = this.socket;
    if (socket && socket.readyState === WebSocket.OPEN) {
      const message = { type: "subscribe" };
      if (route) message.routes = [route];
      socket.send(JSON.stringify(message));
    }
  }

  // While the stream is down: the snapshot, which proxies may answer from their cache.
  // Its server time is the Date header plus the cache's Age.
  async poll() {
    if (this.pollTimer !== null) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) this.poll();
    }, POLL_MS);
    try {
      const response = await fetch("/v1/live/public");
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      const date = Date.parse(response.headers.get("date") || "") || Date.now();
      const at = new Date(date + 1000 * Number(response.headers.get("age") || 0)).toISOString();
      const vehicles = body.vehicles.filter((v) => !this.route || v.route_id === this.route);
      this.onFrame({ type: "snapshot", at, vehicles });
      this.onStatus("reconnecting");
    } catch {
      this.onStatus("offline");
    }
  }

  stopPolling() {
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}
