// The Leaflet map: a marker per bus (route number, grey when stale), the chosen
// route's shape and stops. Tiles come from MAP_TILE_URL; without tiles (none
// configured, or no network) the map is a plain background and still works.
import { paint } from "./colours.js";

const L = window.L;

export class BusMap {
  constructor(element, { tiles, attribution, onStop }) {
    this.markers = new Map();
    this.fitted = false;
    this.onStop = onStop;
    if (!L) {
      element.hidden = true; // Leaflet did not load: the list below still shows every bus
      return;
    }
    this.map = L.map(element, { zoomControl: true, keyboard: true }).setView([20, 0], 2);
    if (tiles) L.tileLayer(tiles, { maxZoom: 19, attribution }).addTo(this.map);
    this.routeLayer = L.layerGroup().addTo(this.map);
  }

  show(items, describe, badgeText, coloursOf = () => null) {
    if (!this.map) return;
    const seen = new Set();
    for (const { bus, age, stale } of items) {
      seen.add(bus.id);
      const where = [bus.lat, bus.lon];
      let marker = this.markers.get(bus.id);
      if (!marker) {
        const icon = L.divIcon({ className: "bus-icon", html: "<span></span>", iconSize: [34, 34] });
        marker = L.marker(where, { icon, keyboard: true, riseOnHover: true }).addTo(this.map);
        this.markers.set(bus.id, marker);
      } else {
        marker.setLatLng(where);
      }
      const el = marker.getElement();
      if (el) {
        el.classList.toggle("stale", stale);
        el.dataset.bus = bus.id;
        el.dataset.lat = String(bus.lat);
        el.dataset.lon = String(bus.lon);
        el.setAttribute("aria-label", describe(bus, age, stale));
        el.firstChild.textContent = badgeText(bus.route_id);
        paint(el.firstChild, stale ? null : coloursOf(bus.route_id));
      }
    }
    for (const [id, marker] of this.markers) {
      if (!seen.has(id)) {
        marker.remove();
        this.markers.delete(id);
      }
    }
    if (!this.fitted && items.length) {
      this.fitted = true;
      this.fit(items.map(({ bus }) => [bus.lat, bus.lon]));
    }
  }

  fit(points) {
    if (!this.map || !points.length) return;
    this.map.fitBounds(L.latLngBounds(points).pad(0.2), { maxZoom: 16 });
  }

  focus(bus) {
    if (this.map) this.map.setView([bus.lat, bus.lon], Math.max(this.map.getZoom(), 15));
  }

  // The route's shape (lists of [lat, lon]) and its stops, replacing the last route's.
  showRoute(shapes, stops, describeStop) {
    if (!this.map) return;
    this.routeLayer.clearLayers();
    const points = [];
    for (const line of shapes) {
      L.polyline(line, { color: "#0b4f94", weight: 5, opacity: 0.7 }).addTo(this.routeLayer);
      points.push(...line);
    }
    for (const stop of stops) {
      const dot = L.circleMarker([stop.lat, stop.lon], {
        radius: 6, color: "#0b4f94", weight: 2, fillColor: "#ffffff", fillOpacity: 1,
      }).addTo(this.routeLayer);
      // As text: stop names come from an imported feed, never to be read as HTML.
      const label = document.createElement("span");
      label.textContent = describeStop(stop);
      dot.bindTooltip(label);
      dot.on("click", () => this.onStop(stop.stop_id));
      points.push([stop.lat, stop.lon]);
    }
    if (points.length) this.fit(points);
  }

  clearRoute() {
    if (this.routeLayer) this.routeLayer.clearLayers();
  }
}
