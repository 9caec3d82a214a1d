// Strings come from one JSON per language (i18n/<lang>.json); the page names
// its strings with data-i18n (text) and data-i18n-aria (aria-label).
export const LANGUAGES = ["en", "it"];
const KEY = "bustracker.lang";
let strings = {};
let current = "en";

export function preferred() {
  const saved = localStorage.getItem(KEY);
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export async function load(lang, remember = false) {
  const response = await fetch(`/rider/i18n/${lang}.json`);
  if (!response.ok) throw new Error(`no strings for ${lang}`);
  strings = await response.json();
  current = lang;
  if (remember) localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  document.title = t("title");
}

export function language() {
  return current;
}

export function t(key, values = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function ageText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return t("updated_s", { n: s });
  if (s < 7200) return t("updated_min", { n: Math.floor(s / 60) });
  return t("updated_h", { n: Math.floor(s / 3600) });
}
