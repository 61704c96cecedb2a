// Shared by every page: messages in the chosen language, calls to the public v1 API, and the
// signed-in session (kept in sessionStorage: gone when the tab closes; never persisted).

const LANGUAGES = ["en", "sv"];
const LANGUAGE_KEY = "support-pin.lang";
const SESSION_KEY = "support-pin.session";
const NOTICE_KEY = "support-pin.notice";

let messages = {};
let language = "en";
const languageListeners = [];

function preferredLanguage() {
  const chosen = sessionStorage.getItem(LANGUAGE_KEY);
  if (LANGUAGES.includes(chosen)) return chosen;
  for (const tag of navigator.languages || [navigator.language]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

async function loadMessages(lang) {
  const response = await fetch(`/static/i18n/${lang}.json`, { credentials: "omit" });
  if (!response.ok) throw new Error(`messages for ${lang}: HTTP ${response.status}`);
  messages = await response.json();
  language = lang;
}

/** The message `key` in the current language, with `{name}` placeholders filled in. */
export function t(key, values = {}) {
  const text = Object.hasOwn(messages, key) ? messages[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole,
  );
}

export function hasMessage(key) {
  return Object.hasOwn(messages, key);
}

/** A BCP 47 tag for dates and times: the browser's own variant of the chosen language. */
export function locale() {
  for (const tag of navigator.languages || []) {
    if (String(tag).toLowerCase().split("-")[0] === language) return tag;
  }
  return language === "sv" ? "sv-SE" : "en-GB";
}

export function formatTime(date) {
  return new Intl.DateTimeFormat(locale(), {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  }).format(date);
}

export function formatDateTime(date) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "long" }).format(date);
}

/** Time of day when `date` is today, date and time otherwise. */
export function formatWhen(date) {
  const today = new Date();
  return date.toDateString() === today.toDateString() ? formatTime(date) : formatDateTime(date);
}

function applyMessages() {
  document.documentElement.lang = language;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  }
}

/** Calls `listener` after each language switch, to redraw text made by code. */
export function onLanguageChange(listener) {
  languageListeners.push(listener);
}

/** Loads the messages, fills in the page and wires the language switch. */
export async function startPage() {
  try {
    await loadMessages(preferredLanguage());
  } catch {
    // Without the chosen language, English; without that, the keys: never a blank page.
    await loadMessages("en").catch(() => {});
  }
  applyMessages();
  const select = document.getElementById("lang");
  select.value = language;
  select.addEventListener("change", async () => {
    if (!LANGUAGES.includes(select.value)) return;
    sessionStorage.setItem(LANGUAGE_KEY, select.value);
    await loadMessages(select.value);
    applyMessages();
    for (const listener of languageListeners) listener();
  });
  document.documentElement.classList.remove("i18n-pending");
}

export class ApiError extends Error {
  constructor(status, code, retryAfter, problem) {
    super(`${status} ${code}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.problem = problem;
  }
}

/** Calls the v1 API; answers the parsed JSON body (null for 204) or throws ApiError. */
export async function api(path, { method = "GET", token, json, form } = {}) {
  const headers = { accept: "application/json" };
  let body;
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "omit", cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", null, null);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = data && typeof data.code === "string" ? data.code : `http_${response.status}`;
    const retryAfter = Number.parseInt(response.headers.get("retry-after") || "", 10);
    throw new ApiError(response.status, code, Number.isFinite(retryAfter) ? retryAfter : null, data);
  }
  return data;
}

/** A sentence for the user about a failed call; never the raw problem document. */
export function errorMessage(error, overrides = {}) {
  if (!(error instanceof ApiError)) return t("error.generic", { status: "?" });
  if (Object.hasOwn(overrides, error.code)) return t(overrides[error.code]);
  if (error.code === "rate_limited" || error.status === 429) {
    return error.retryAfter
      ? t("error.rate_limited.seconds", { seconds: error.retryAfter })
      : t("error.rate_limited");
  }
  if (error.status === 503) return t("error.unavailable");
  // Rules the form cannot check itself: say which one, in the page's language.
  const reason = error.problem && error.problem.reason;
  if (error.code === "password_refused" && Object.hasOwn(messages, `error.password_refused.${reason}`)) {
    return t(`error.password_refused.${reason}`);
  }
  if (error.code === "email_confusable") return t("error.email_confusable");
  if (error.status === 422) return t("error.validation_error");
  if (Object.hasOwn(messages, `error.${error.code}`)) return t(`error.${error.code}`);
  return t("error.generic", { status: error.status || "?" });
}

export function showMessage(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

export function saveSession(tokenAnswer) {
  const expiresAt = Date.now() + tokenAnswer.expires_in * 1000;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: tokenAnswer.access_token, expiresAt }));
}

/** The session token, or null when there is none or it has run out. */
export function sessionToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (saved && typeof saved.token === "string" && saved.expiresAt > Date.now()) return saved.token;
  } catch {
    // A damaged entry is the same as none.
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** A one-line notice for the next page (e.g. "You have signed out"): a message key only. */
export function setNotice(key) {
  sessionStorage.setItem(NOTICE_KEY, key);
}

export function takeNotice() {
  const key = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  return key;
}

// --- Form errors beside their fields -----------------------------------------------------------

// The field errors on show: input -> a function giving the text (redrawn on a language switch).
const fieldErrors = new Map();

function drawFieldError(input) {
  const note = document.getElementById(`${input.id}-error`);
  if (note) note.textContent = fieldErrors.get(input)();
}

/** Shows `text` (a message, or a function giving it) under `input`, marks the input invalid
 * (aria-invalid) and describes it by the message (aria-describedby, before its hint). */
export function setFieldError(input, text) {
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!note) {
    note = document.createElement("p");
    note.id = id;
    note.className = "field-error";
    (input.closest(".field") ?? input.parentElement).append(note);
  }
  fieldErrors.set(input, typeof text === "function" ? text : () => text);
  drawFieldError(input);
  note.hidden = false;
  input.setAttribute("aria-invalid", "true");
  const described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
  if (!described.includes(id)) input.setAttribute("aria-describedby", [id, ...described].join(" "));
}

export function clearFieldError(input) {
  const id = `${input.id}-error`;
  fieldErrors.delete(input);
  input.removeAttribute("aria-invalid");
  const described = (input.getAttribute("aria-describedby") || "")
    .split(/\s+/)
    .filter((part) => part && part !== id);
  if (described.length) input.setAttribute("aria-describedby", described.join(" "));
  else input.removeAttribute("aria-describedby");
  const note = document.getElementById(id);
  if (note) {
    note.textContent = "";
    note.hidden = true;
  }
}

/** Clears the field errors of every input in `form`. */
export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("input, select, textarea")) clearFieldError(input);
}

languageListeners.push(() => {
  for (const input of fieldErrors.keys()) drawFieldError(input);
});

// What a request validation error of a field says, by pydantic's error type.
const FIELD_PROBLEMS = {
  missing: "form.field.missing",
  string_too_short: "form.field.too-short",
  string_too_long: "form.field.too-long",
};

function labelOf(input) {
  const label = input.labels?.[0];
  return label ? label.textContent.trim() : input.name;
}

/**
 * Puts a failed call's field errors beside the fields they name (the problem's `errors`, whose
 * `loc` ends with the API's field name). `fields` maps the API's field names to inputs;
 * `messages` maps a problem code to a message key (or a function giving the text) for the
 * field it names. Answers the first field marked (to be given focus), or null.
 */
export function showFieldProblems(error, fields, messages = {}) {
  if (!(error instanceof ApiError) || !Array.isArray(error.problem?.errors)) return null;
  const marked = [];
  for (const entry of error.problem.errors) {
    const loc = Array.isArray(entry?.loc) ? entry.loc : [];
    const name = loc[loc.length - 1];
    const input = Object.hasOwn(fields, name) ? fields[name] : null;
    if (!input || marked.includes(input)) continue;
    let text;
    if (Object.hasOwn(messages, error.code)) {
      const message = messages[error.code];
      text = typeof message === "function" ? message : () => t(message);
    } else if (error.code === "validation_error") {
      const key = FIELD_PROBLEMS[entry.type] ?? "form.field.invalid";
      text = () => t(key, { field: labelOf(input) });
    } else {
      text = () => errorMessage(error);
    }
    setFieldError(input, text);
    marked.push(input);
  }
  return marked[0] ?? null;
}

/** Disables a form's controls while `work` runs, so a double click sends one request. */
export async function busy(form, work) {
  const controls = [...form.querySelectorAll("button, input, select")];
  const before = controls.map((control) => control.disabled);
  form.setAttribute("aria-busy", "true");
  for (const control of controls) control.disabled = true;
  try {
    return await work();
  } finally {
    controls.forEach((control, index) => {
      control.disabled = before[index];
    });
    form.removeAttribute("aria-busy");
  }
}
