// The account page: who is signed in, Support PIN activity, sign-out and the Support PIN dialog.
import {
  api,
  ApiError,
  clearSession,
  errorMessage,
  formatWhen,
  hasMessage,
  onLanguageChange,
  sessionToken,
  setNotice,
  showMessage,
  startPage,
  t,
} from "./app.js";

const errorBox = document.getElementById("error");
const eventsList = document.getElementById("events");
const eventsEmpty = document.getElementById("events-empty");
const openButton = document.getElementById("open-pin");
const dialog = document.getElementById("pin-dialog");
const generateButton = document.getElementById("generate-pin");
const okButton = document.getElementById("close-pin");
const pinPanel = document.getElementById("pin-panel");
const pinValue = document.getElementById("pin-value");
const pinExpires = document.getElementById("pin-expires");
const pinCountdown = document.getElementById("pin-countdown");
const pinNotice = document.getElementById("pin-notice");
const pinError = document.getElementById("pin-error");
const pinAnnounce = document.getElementById("pin-announce");

const token = sessionToken();
let events = [];
// The PIN shown in the dialog, in memory only: { pin, expiresAt (Date), deadline (ms), issuedAt }.
let current = null;
// What the dialog says about the state of the PIN: { key, values } or null.
let notice = null;
let ticker = null;

function leave(noticeKey) {
  clearSession();
  setNotice(noticeKey);
  window.location.replace("/");
}

/** Calls the API as the signed-in user; an ended session goes back to sign-in. */
async function call(path, options = {}) {
  try {
    return await api(path, { ...options, token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) leave("signin.session-ended");
    throw error;
  }
}

function eventText(event) {
  const anonymous = !event.agent && ["verified", "verify_failed"].includes(event.type);
  const key = anonymous ? `event.${event.type}.anonymous` : `event.${event.type}`;
  // The case a check belonged to, when the agent gave one.
  if (event.case_ref && hasMessage(`${key}.case`)) {
    return t(`${key}.case`, { agent: event.agent ?? "", case: event.case_ref });
  }
  // A kind of event newer than these pages still gets a line, not a message key.
  return t(hasMessage(key) ? key : "event.other", { agent: event.agent ?? "" });
}

function renderEvents() {
  eventsList.replaceChildren(
    ...events.map((event) => {
      const item = document.createElement("li");
      item.className = `event event-${event.type}`;
      item.dataset.type = event.type;
      const what = document.createElement("span");
      what.className = "event-what";
      what.textContent = eventText(event);
      const when = document.createElement("time");
      when.className = "event-when";
      when.dateTime = event.at;
      when.textContent = formatWhen(new Date(event.at));
      item.append(what, when);
      return item;
    }),
  );
  eventsEmpty.hidden = events.length > 0;
}

async function loadEvents() {
  try {
    events = (await call("/v1/me/support-pin/events?limit=20")).events;
    renderEvents();
  } catch (error) {
    showMessage(errorBox, errorMessage(error));
  }
}

function groupDigits(pin) {
  return pin.length % 3 === 0 ? pin.replace(/(\d{3})(?=\d)/g, "$1 ") : pin;
}

function renderCountdown() {
  if (!current) return;
  const left = Math.max(0, Math.round((current.deadline - Date.now()) / 1000));
  const minutes = Math.floor(left / 60);
  const seconds = String(left % 60).padStart(2, "0");
  pinCountdown.textContent = `${minutes}:${seconds}`;
  if (left === 0) {
    // Ask the service what became of it (used or expired); when closed, on the next opening.
    clearInterval(ticker);
    ticker = null;
    if (dialog.open) refreshPinState().catch((error) => showMessage(pinError, errorMessage(error)));
  }
}

function renderDialog() {
  if (notice) {
    const values = { ...notice.values };
    if (values.at) values.time = formatWhen(values.at);
    showMessage(pinNotice, t(notice.key, values));
  } else {
    showMessage(pinNotice, "");
  }
  pinPanel.hidden = !current;
  // Before a PIN is shown, generating one is the thing to do; after, "OK" is.
  generateButton.className = `btn ${current ? "btn-secondary" : "btn-primary"}`;
  okButton.className = `btn ${current ? "btn-primary" : "btn-secondary"}`;
  if (current) {
    pinValue.textContent = groupDigits(current.pin);
    pinExpires.dateTime = current.expiresAt.toISOString();
    // With the date too when that is not today (a long PIN_TTL_SECONDS, or near midnight).
    pinExpires.textContent = formatWhen(current.expiresAt);
    renderCountdown();
  }
}

function forgetPin(newNotice) {
  current = null;
  pinAnnounce.textContent = "";
  notice = newNotice;
  clearInterval(ticker);
  ticker = null;
  renderDialog();
}

/** Why the PIN we showed no longer works, from the account's own events. */
function whyGone(shown, recent) {
  const issued = shown.issuedAt.getTime();
  const after = (event, slack) => Date.parse(event.at) >= issued + slack;
  // Oldest first: the first event after ours that ends a PIN says what happened. The second
  // of slack keeps our own "issued" row (written a moment before the answer) out.
  const ended = [...recent]
    .reverse()
    .find(
      (event) =>
        (event.type === "issued" && after(event, 1000)) ||
        (["verified", "revoked", "locked"].includes(event.type) && after(event, -1000)),
    );
  if (ended) {
    const at = new Date(ended.at);
    if (ended.type === "verified") {
      return ended.agent
        ? { key: "pin.status.used", values: { agent: ended.agent, at } }
        : { key: "pin.status.used.anonymous", values: { at } };
    }
    if (ended.type === "issued") return { key: "pin.status.replaced", values: { at } };
    if (ended.type === "revoked") return { key: "pin.status.revoked", values: { at } };
    return { key: "pin.status.failed", values: {} };
  }
  if (Date.now() >= shown.deadline) {
    return { key: "pin.status.expired", values: { at: shown.expiresAt } };
  }
  if (recent.some((event) => event.type === "verify_failed" && after(event, -1000))) {
    return { key: "pin.status.failed", values: {} };
  }
  return { key: "pin.status.gone", values: {} };
}

/** On opening: is the PIN still the one that works? Says so if it is not. */
async function refreshPinState() {
  const state = await call("/v1/me/support-pin");
  const stillOurs =
    current && state.active && new Date(state.expires_at).getTime() === current.expiresAt.getTime();
  if (current && !stillOurs) {
    const recent = (await call("/v1/me/support-pin/events?limit=20")).events;
    events = recent;
    renderEvents();
    forgetPin(whyGone(current, recent));
  } else if (current && Date.now() >= current.deadline && dialog.open) {
    // Our countdown ran out a moment before the service's clock did: ask again shortly.
    setTimeout(() => refreshPinState().catch(() => {}), 1000);
  } else if (!current && state.active) {
    notice = { key: "pin.status.active-hidden", values: { at: new Date(state.expires_at) } };
    renderDialog();
  } else if (!current && notice?.key === "pin.status.active-hidden") {
    notice = null;
    renderDialog();
  }
}

async function generatePin() {
  showMessage(pinError, "");
  generateButton.disabled = true;
  try {
    const answer = await call("/v1/me/support-pin", { method: "POST" });
    const received = Date.now();
    current = {
      pin: answer.pin,
      expiresAt: new Date(answer.expires_at),
      // Counted from the answer, not the clock of this device, which may be off.
      deadline: received + answer.ttl_seconds * 1000,
      issuedAt: new Date(new Date(answer.expires_at).getTime() - answer.ttl_seconds * 1000),
    };
    notice = null;
    clearInterval(ticker);
    ticker = setInterval(renderCountdown, 1000);
    renderDialog();
    // Read out once by screen readers, digit by digit (the countdown itself stays quiet).
    pinAnnounce.textContent = t("pin.announce", {
      digits: current.pin.split("").join(" "),
      time: formatWhen(current.expiresAt),
    });
    loadEvents();
  } catch (error) {
    showMessage(pinError, errorMessage(error));
  } finally {
    generateButton.disabled = false;
  }
}

openButton.addEventListener("click", async () => {
  showMessage(pinError, "");
  renderDialog();
  dialog.showModal();
  try {
    await refreshPinState();
  } catch (error) {
    showMessage(pinError, errorMessage(error));
  }
});

// Back to this tab with the dialog open (say, after the call): check the PIN again.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && dialog.open) {
    refreshPinState().catch((error) => showMessage(pinError, errorMessage(error)));
  }
});

generateButton.addEventListener("click", generatePin);
okButton.addEventListener("click", () => dialog.close());
// Esc closes a modal <dialog> by itself; either way focus goes back to the button.
dialog.addEventListener("close", () => {
  openButton.focus();
  loadEvents();
});

document.getElementById("sign-out").addEventListener("click", async (event) => {
  event.currentTarget.disabled = true;
  try {
    await api("/v1/auth/logout", { method: "POST", token });
  } catch {
    // Signing out locally still happens; the token also expires by itself.
  }
  leave("signin.signed-out");
});

onLanguageChange(() => {
  renderEvents();
  renderDialog();
});

if (!token) {
  leave("signin.session-ended");
} else {
  await startPage();
  try {
    const me = await call("/v1/me");
    document.getElementById("account-email").textContent = me.email;
  } catch (error) {
    showMessage(errorBox, errorMessage(error));
  }
  await loadEvents();
}
