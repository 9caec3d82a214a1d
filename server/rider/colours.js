// A route's own colours for its badges, kept only when they read: WCAG AA (4.5:1)
// between text and background, else the app's palette (style.css) stays.
function luminance(hex) {
  const channel = (i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
}

export function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

const HEX = /^[0-9a-fA-F]{6}$/;

// {background, color} as CSS values, or null for the default palette. GTFS says a
// missing route_text_color is black (000000).
export function badgeColours(route) {
  const bg = route?.color, fg = route?.text_color || "000000";
  if (!bg || !HEX.test(bg) || !HEX.test(fg)) return null;
  if (contrast(bg, fg) < 4.5) return null;
  return { background: `#${bg}`, color: `#${fg}` };
}

// Paint an element (a badge, a marker) in its route's colours, or clear them back
// to the stylesheet's (stale buses are grey whatever their route).
export function paint(el, colours) {
  el.style.background = colours ? colours.background : "";
  el.style.color = colours ? colours.color : "";
}
