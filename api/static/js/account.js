// The account page, top to bottom: the Support card (whether Support is in contact right now,
// checks as they happen with "Wasn't you? Lock support access", and the Support PIN button),
// the activity list, Security (password, two-factor sign-in, passkeys), sign-out with the
// Support PIN button again, and deleting the account. Live through an event stream: the call
// status, checks as they happen, and Support's requests to confirm it is the customer.
import {
  api,
  ApiError,
  busy,
  clearFieldErrors,
  clearSession,
  errorMessage,
  formatDateTime,
  formatWhen,
  hasMessage,
  onLanguageChange,
  sessionToken,
  setFieldError,
  setNotice,
  showFieldProblems,
  showMessage,
  startPage,
  t,
} from "./app.js";
import { followEventStream } from "./event-stream.js";
import {
  creationOptions,
  credentialJson,
  passkeyFailure,
  passkeysPossible,
} from "./webauthn.js";

const errorBox = document.getElementById("error");
const eventsList = document.getElementById("events");
const eventsEmpty = document.getElementById("events-empty");
const eventsAll = document.getElementById("events-all");
const openButton = document.getElementById("open-pin");
const openAgainButton = document.getElementById("open-pin-again");
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
const pinReplace = document.getElementById("pin-replace");
const pinButtons = document.getElementById("pin-buttons");
const replaceYes = document.getElementById("pin-replace-yes");
const replaceNo = document.getElementById("pin-replace-no");
const callStatus = document.getElementById("call-status");
const callStatusText = document.getElementById("call-status-text");
const confirmReopen = document.getElementById("confirm-reopen");
const liveCheck = document.getElementById("live-check");
const liveCheckText = document.getElementById("live-check-text");
const confirmDialog = document.getElementById("confirm-dialog");
const confirmTitle = document.getElementById("confirm-title");
const confirmQuestion = document.getElementById("confirm-question");
const confirmAsk = document.getElementById("confirm-ask");
const confirmChoices = document.getElementById("confirm-choices");
const confirmDeny = document.getElementById("confirm-deny");
const confirmEnds = document.getElementById("confirm-ends");
const confirmResult = document.getElementById("confirm-result");
const confirmError = document.getElementById("confirm-error");
const confirmClose = document.getElementById("confirm-close");
const lockDialog = document.getElementById("lock-dialog");
const lockError = document.getElementById("lock-error");
const lockConfirm = document.getElementById("lock-confirm");

const token = sessionToken();
// The activity list: the ten newest, or (after "Show all") as many as the API gives.
const EVENTS_SHOWN = 10;
let events = [];
let showAll = false;
// The signed-in account (GET /v1/me), once read.
let me = null;
// The PIN shown in the dialog, in memory only: { pin, expiresAt (Date), deadline (ms), issuedAt }.
let current = null;
// What the dialog says about the state of the PIN: { key, values } or null.
let notice = null;
let ticker = null;
// Whether the service said a PIN is active, at the latest look (null: not known).
let pinActive = null;
// The button that opened the PIN dialog, where focus goes back; and an opening under way.
let opener = null;
let opening = false;

// Whether Support is in contact (GET /v1/me/support-contact, then `contact` events): undefined
// before the first answer, null when that could not be read.
let contact;
let contactTimer = null;
// Support's request to confirm it is this customer: { id, agent, caseRef, choices, expiresAt
// (Date), answering, outcome (null, or approved, denied, reported, gone) }; null when none.
let prompt = null;
let promptTimer = null;
// The latest check that verified the PIN while this page was open: { agent, caseRef, at }.
let liveVerified = null;
// The live event stream ({ close() }) and whether the page is on its way out.
let stream = null;
let leaving = false;

function leave(noticeKey) {
  if (leaving) return;
  leaving = true;
  stream?.close();
  clearSession();
  sessionStorage.removeItem(SHOWN_PIN_KEY);
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

/** A button that asks before locking support access (for a check the customer did not
 * expect); `about` is the element that says which check. */
function lockButton(about, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = t("lock.button");
  button.setAttribute("aria-haspopup", "dialog");
  button.setAttribute("aria-describedby", about.id);
  button.addEventListener("click", openLockDialog);
  return button;
}

function renderEvents() {
  const shown = showAll ? events : events.slice(0, EVENTS_SHOWN);
  eventsList.replaceChildren(
    ...shown.map((event, index) => {
      const item = document.createElement("li");
      item.className = `event event-${event.type}`;
      item.dataset.type = event.type;
      const what = document.createElement("span");
      what.className = "event-what";
      what.id = `event-${index}`;
      what.textContent = eventText(event);
      const when = document.createElement("time");
      when.className = "event-when";
      when.dateTime = event.at;
      when.textContent = formatWhen(new Date(event.at));
      item.append(what, when);
      // Each verification can be answered with "that was not me".
      if (event.type === "verified") {
        item.append(lockButton(what, "btn btn-secondary btn-small btn-danger event-lock"));
      }
      return item;
    }),
  );
  eventsEmpty.hidden = events.length > 0;
  eventsAll.hidden = !showAll && events.length <= EVENTS_SHOWN;
  eventsAll.textContent = t(showAll ? "account.activity.fewer" : "account.activity.all");
  eventsAll.setAttribute("aria-expanded", String(showAll));
}

function eventsPath() {
  return `/v1/me/support-pin/events?limit=${showAll ? 200 : 50}`;
}

async function loadEvents() {
  try {
    events = (await call(eventsPath())).events;
    renderEvents();
  } catch (error) {
    if (!leaving) showMessage(errorBox, errorMessage(error));
  }
}

let eventsLoading = null;
let eventsStale = false;

/** The activity list again, at once (a live event says it changed); one call at a time. */
function reloadEvents() {
  if (eventsLoading) {
    eventsStale = true;
    return;
  }
  eventsLoading = loadEvents().finally(() => {
    eventsLoading = null;
    if (eventsStale) {
      eventsStale = false;
      reloadEvents();
    }
  });
}

// --- Is Support in contact right now? -----------------------------------------------------------

function renderContact() {
  let text = "";
  if (contact === null) {
    text = t("call.unknown");
  } else if (contact?.in_contact) {
    const values = {
      agent: contact.agent ?? "",
      case: contact.case_ref ?? "",
      time: contact.since ? formatWhen(new Date(contact.since)) : "",
    };
    text = t(contact.case_ref ? "call.in-contact.case" : "call.in-contact", values);
  } else if (contact) {
    text = t("call.none");
  }
  // Set only when it changed: the line is a live region, read out on each change.
  if (callStatusText.textContent !== text) callStatusText.textContent = text;
  const state = contact?.in_contact ? "contact" : "none";
  callStatus.className = `call-status call-status-${state}`;
  callStatus.dataset.state = contact?.in_contact ? "in-contact" : contact ? "none" : "unknown";
  confirmReopen.hidden = !prompt || Boolean(prompt.outcome) || confirmDialog.open;
}

function setContact(value) {
  contact = value;
  renderContact();
  clearTimeout(contactTimer);
  // A contact's time runs out without an event: while it lasts (or is unknown), ask again.
  if (contact === null || contact.in_contact) contactTimer = setTimeout(loadContact, 30_000);
}

async function loadContact() {
  try {
    setContact(await call("/v1/me/support-contact"));
  } catch {
    if (!leaving) setContact(contact?.in_contact ? contact : null);
  }
}

// --- A check that verified the PIN, as it happens -----------------------------------------------

function renderLiveCheck() {
  liveCheck.hidden = !liveVerified;
  if (!liveVerified) return;
  const values = {
    agent: liveVerified.agent ?? "",
    case: liveVerified.caseRef ?? "",
    time: formatWhen(liveVerified.at),
  };
  const key = liveVerified.caseRef ? "live.verified.case" : "live.verified";
  liveCheckText.textContent = t(key, values);
}

// --- Support asks the customer to confirm it is them --------------------------------------------

function renderPrompt() {
  if (!prompt) return;
  const values = { agent: prompt.agent, case: prompt.caseRef ?? "" };
  const key = prompt.caseRef ? "confirm.question.case" : "confirm.question";
  confirmQuestion.textContent = t(key, values);
  confirmEnds.textContent = t("confirm.ends", { time: formatWhen(prompt.expiresAt) });
  confirmAsk.hidden = Boolean(prompt.outcome);
  confirmClose.hidden = !prompt.outcome;
  if (prompt.outcome) {
    const style = { approved: "alert-ok", denied: "alert-error" }[prompt.outcome] ?? "alert-info";
    confirmResult.className = `alert ${style}`;
    confirmResult.dataset.outcome = prompt.outcome;
    showMessage(confirmResult, t(`confirm.${prompt.outcome}`));
  } else {
    showMessage(confirmResult, "");
  }
}

function setPromptBusy(on) {
  for (const button of [...confirmChoices.children, confirmDeny]) button.disabled = on;
}

/** Shows a request (from the list or an event); a new one replaces the one on show. */
function showPrompt(pending) {
  const expiresAt = new Date(pending.expires_at);
  if (prompt?.id === pending.id || expiresAt.getTime() <= Date.now()) return;
  prompt = {
    id: pending.id,
    agent: pending.agent,
    caseRef: pending.case_ref,
    choices: pending.choices,
    expiresAt,
    answering: false,
    outcome: null,
  };
  // The numbers in the order given: the agent's is not always in the same place.
  confirmChoices.replaceChildren(
    ...prompt.choices.map((choice) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-choice";
      button.textContent = choice;
      button.dataset.choice = choice;
      button.addEventListener("click", () => answerPrompt(choice));
      return button;
    }),
  );
  showMessage(confirmError, "");
  renderPrompt();
  if (confirmDialog.open) confirmTitle.focus();
  else confirmDialog.showModal();
  renderContact();
  schedulePromptCheck();
}

/** The request on show has ended (answered elsewhere, replaced or expired): it goes. */
function endPrompt() {
  prompt = null;
  clearTimeout(promptTimer);
  if (confirmDialog.open) confirmDialog.close();
  renderContact();
}

function schedulePromptCheck() {
  clearTimeout(promptTimer);
  const wait = Math.max(1000, prompt.expiresAt.getTime() - Date.now() + 500);
  promptTimer = setTimeout(checkPrompt, wait);
}

/** At its expiry (by this device's clock, which may be off): is it still waiting? */
async function checkPrompt() {
  const checking = prompt;
  if (!checking || checking.outcome || checking.answering) return;
  let pending;
  try {
    pending = (await call("/v1/me/confirmations")).confirmations;
  } catch {
    if (prompt === checking) promptTimer = setTimeout(checkPrompt, 5000);
    return;
  }
  if (prompt !== checking || checking.outcome || checking.answering) return;
  if (pending.some((item) => item.id === checking.id)) promptTimer = setTimeout(checkPrompt, 2000);
  else endPrompt();
}

async function loadConfirmations() {
  let pending;
  try {
    pending = (await call("/v1/me/confirmations")).confirmations;
  } catch {
    return; // the stream brings the next one
  }
  if (pending.length) showPrompt(pending[0]);
  else if (prompt && !prompt.outcome && !prompt.answering) endPrompt();
}

/** Answers the request on show with `choice`, or with null: "I am not on a call". */
async function answerPrompt(choice) {
  const answering = prompt;
  if (!answering || answering.answering || answering.outcome) return;
  answering.answering = true;
  showMessage(confirmError, "");
  setPromptBusy(true);
  const path = `/v1/me/confirmations/${encodeURIComponent(answering.id)}`;
  let outcome;
  try {
    if (choice === null) {
      await call(`${path}/deny`, { method: "POST" });
      outcome = "reported";
    } else {
      const answer = await call(path, { method: "POST", json: { choice } });
      outcome = answer.status === "approved" ? "approved" : "denied";
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      outcome = "gone";
    } else {
      answering.answering = false;
      setPromptBusy(false);
      if (!leaving) showMessage(confirmError, errorMessage(error));
      return;
    }
  }
  answering.answering = false;
  setPromptBusy(false);
  if (prompt !== answering) return; // replaced by a newer request meanwhile
  answering.outcome = outcome;
  clearTimeout(promptTimer);
  renderPrompt();
  renderContact();
  if (confirmDialog.open) confirmClose.focus();
  reloadEvents();
}

confirmDeny.addEventListener("click", () => answerPrompt(null));
confirmClose.addEventListener("click", () => confirmDialog.close());
// Esc closes it unanswered: the call-status line then offers to open it again.
confirmDialog.addEventListener("close", () => {
  if (prompt?.outcome) prompt = null;
  renderContact();
});
confirmReopen.addEventListener("click", () => {
  if (prompt && !prompt.outcome && !confirmDialog.open) {
    renderPrompt();
    confirmDialog.showModal();
    renderContact();
  }
});

// --- "Wasn't you? Lock support access" ----------------------------------------------------------

function openLockDialog() {
  showMessage(lockError, "");
  lockDialog.showModal();
}

document.getElementById("lock-cancel").addEventListener("click", () => lockDialog.close());
document.getElementById("live-lock").addEventListener("click", openLockDialog);
document.getElementById("live-dismiss").addEventListener("click", () => {
  liveVerified = null;
  renderLiveCheck();
  openButton.focus();
});

lockConfirm.addEventListener("click", async () => {
  lockConfirm.disabled = true;
  showMessage(lockError, "");
  // The lock ends every session and stream: this page is not to take that for a lost session.
  stream?.close();
  try {
    await api("/v1/me/support-lock", { method: "POST", token });
    leave("signin.support-locked");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      leave("signin.session-ended");
      return;
    }
    showMessage(lockError, errorMessage(error));
    startStream();
  } finally {
    lockConfirm.disabled = false;
  }
});

// --- The live event stream ----------------------------------------------------------------------

function onStreamEvent({ event, data }) {
  let body;
  try {
    body = JSON.parse(data);
  } catch {
    return;
  }
  switch (event) {
    case "contact":
      setContact(body);
      break;
    case "confirmation_requested":
      showPrompt(body);
      reloadEvents();
      break;
    case "confirmation_resolved":
      if (prompt?.id === body.id && !prompt.answering && !prompt.outcome) endPrompt();
      reloadEvents();
      break;
    case "pin_verified":
      liveVerified = { agent: body.agent, caseRef: body.case_ref, at: new Date(body.at) };
      renderLiveCheck();
      reloadEvents();
      pinMayHaveChanged();
      break;
    case "verify_failed":
    case "locked":
    case "reported":
      reloadEvents();
      pinMayHaveChanged();
      break;
    case "pin_issued":
      reloadEvents();
      break;
    default:
      break;
  }
}

/** With the PIN dialog open, it says at once what became of the PIN. */
function pinMayHaveChanged() {
  if (dialog.open) refreshPinState().catch((error) => showMessage(pinError, errorMessage(error)));
}

function startStream() {
  stream = followEventStream("/v1/me/stream", {
    token,
    onEvent: onStreamEvent,
    // Read again once listening, so nothing falls between; and after a break, what the
    // replay could not bring (it keeps 10 minutes).
    onOpen: (again) => {
      loadContact();
      loadConfirmations();
      if (again) reloadEvents();
    },
    onRefused: (status) => {
      if (status === 401) leave("signin.session-ended");
    },
  });
}

function groupDigits(pin) {
  return pin.length % 3 === 0 ? pin.replace(/(\d{3})(?=\d)/g, "$1 ") : pin;
}

// --- The Support PIN dialog ---------------------------------------------------------------------

// What this tab last showed of a PIN, never the PIN itself: { account, issuedAt, expiresAt,
// deadline } (ms). After a reload, the dialog can still say what became of it.
const SHOWN_PIN_KEY = "support-pin.shown-pin";

function rememberShown(shown) {
  if (!me) return;
  const saved = {
    account: me.id,
    issuedAt: shown.issuedAt.getTime(),
    expiresAt: shown.expiresAt.getTime(),
    deadline: shown.deadline,
  };
  sessionStorage.setItem(SHOWN_PIN_KEY, JSON.stringify(saved));
}

/** The PIN this tab showed before (after a reload), without its digits; or null. */
function rememberedShown() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SHOWN_PIN_KEY) || "null");
    if (!saved || !me || saved.account !== me.id) return null;
    if (![saved.issuedAt, saved.expiresAt, saved.deadline].every(Number.isFinite)) return null;
    return {
      issuedAt: new Date(saved.issuedAt),
      expiresAt: new Date(saved.expiresAt),
      deadline: saved.deadline,
    };
  } catch {
    return null;
  }
}

/** Whether a PIN works now: the one on show, or one the service says is active. */
function pinIsLive() {
  if (current) return Date.now() < current.deadline;
  return pinActive === true;
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
  generateButton.className = `btn ${pinIsLive() ? "btn-secondary" : "btn-primary"}`;
  okButton.className = `btn ${pinIsLive() ? "btn-primary" : "btn-secondary"}`;
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
    return shown.expiresAt
      ? { key: "pin.status.expired", values: { at: shown.expiresAt } }
      : { key: "pin.status.expired.earlier", values: {} };
  }
  if (recent.some((event) => event.type === "verify_failed" && after(event, -1000))) {
    return { key: "pin.status.failed", values: {} };
  }
  return { key: "pin.status.gone", values: {} };
}

/** What became of the account's newest PIN, for a tab that never showed it (no expiry known:
 * with nothing else ending it, it ran out). */
function newestPinFate(recent) {
  const index = recent.findIndex((event) => event.type === "issued");
  if (index < 0) return null;
  const shown = { issuedAt: new Date(recent[index].at), expiresAt: null, deadline: 0 };
  return whyGone(shown, recent.slice(0, index));
}

/** The PIN's state from the service (on every opening, and when it may have changed): whether
 * the PIN on show (or the one this tab showed before a reload) still works, and if not, why. */
async function refreshPinState() {
  const state = await call("/v1/me/support-pin");
  pinActive = state.active;
  const activeUntil = state.active ? new Date(state.expires_at).getTime() : null;
  const shown = current ?? rememberedShown();
  const stillOurs = shown && activeUntil === shown.expiresAt.getTime();
  if (current && stillOurs) {
    if (Date.now() >= current.deadline && (dialog.open || opening)) {
      // Our countdown ran out a moment before the service's clock did: ask again shortly.
      setTimeout(() => refreshPinState().catch(() => {}), 1000);
    }
    notice = null;
  } else if (state.active && (!shown || stillOurs)) {
    // A PIN works, but this page does not have its digits (shown once, before a reload).
    notice = { key: "pin.status.active-hidden", values: { at: new Date(state.expires_at) } };
  } else {
    const recent = (await call(eventsPath())).events;
    events = recent;
    renderEvents();
    notice = shown ? whyGone(shown, recent) : newestPinFate(recent);
    if (current) {
      forgetPin(notice);
      return;
    }
  }
  renderDialog();
}

function askReplace() {
  pinReplace.hidden = false;
  pinButtons.hidden = true;
  // The safe answer first: Enter twice does not replace a PIN by accident.
  replaceNo.focus();
}

function closeReplace() {
  pinReplace.hidden = true;
  pinButtons.hidden = false;
}

async function generatePin() {
  showMessage(pinError, "");
  closeReplace();
  generateButton.disabled = true;
  let made = false;
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
    rememberShown(current);
    pinActive = true;
    notice = null;
    clearInterval(ticker);
    ticker = setInterval(renderCountdown, 1000);
    renderDialog();
    // Read out once by screen readers, digit by digit (the countdown itself stays quiet).
    pinAnnounce.textContent = t("pin.announce", {
      digits: current.pin.split("").join(" "),
      time: formatWhen(current.expiresAt),
    });
    made = true;
    loadEvents();
  } catch (error) {
    showMessage(pinError, errorMessage(error));
  } finally {
    generateButton.disabled = false;
  }
  if (dialog.open) (made ? okButton : generateButton).focus();
}

/** Opens the dialog with what the service says now; focus on "OK" when a PIN works. */
async function openPinDialog(event) {
  if (opening || dialog.open) return;
  opening = true;
  opener = event.currentTarget;
  showMessage(pinError, "");
  closeReplace();
  try {
    await refreshPinState();
  } catch (error) {
    showMessage(pinError, errorMessage(error));
  } finally {
    opening = false;
  }
  if (leaving) return;
  renderDialog();
  dialog.showModal();
  (pinIsLive() ? okButton : generateButton).focus();
}

openButton.addEventListener("click", openPinDialog);
openAgainButton.addEventListener("click", openPinDialog);

// Back to this tab with the dialog open (say, after the call): check the PIN again.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && dialog.open) {
    refreshPinState().catch((error) => showMessage(pinError, errorMessage(error)));
  }
});

// With a PIN that works, "Generate PIN" asks before replacing it.
generateButton.addEventListener("click", () => (pinIsLive() ? askReplace() : generatePin()));
replaceYes.addEventListener("click", generatePin);
replaceNo.addEventListener("click", () => {
  closeReplace();
  okButton.focus();
});
okButton.addEventListener("click", () => dialog.close());
// Esc closes a modal <dialog> by itself; either way focus goes back to the button.
dialog.addEventListener("close", () => {
  closeReplace();
  (opener ?? openButton).focus();
  loadEvents();
});

eventsAll.addEventListener("click", () => {
  showAll = !showAll;
  renderEvents();
  if (showAll) loadEvents();
});

document.getElementById("sign-out").addEventListener("click", async (event) => {
  event.currentTarget.disabled = true;
  stream?.close();
  try {
    await api("/v1/auth/logout", { method: "POST", token });
  } catch {
    // Signing out locally still happens; the token also expires by itself.
  }
  leave("signin.signed-out");
});

// --- Security: password -------------------------------------------------------------------------

const passwordForm = document.getElementById("password-form");
const passwordDone = document.getElementById("password-done");
const passwordError = document.getElementById("password-error");
const currentPassword = document.getElementById("current-password");
const newPassword = document.getElementById("new-password");

// A message on show that a language switch redraws: element -> function giving the text.
const shownMessages = new Map();

function say(element, text) {
  if (text) shownMessages.set(element, text);
  else shownMessages.delete(element);
  showMessage(element, text ? text() : "");
}

function hasPassword() {
  return !me || (me.sign_in_methods ?? ["password"]).includes("password");
}

passwordForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(passwordDone, null);
  say(passwordError, null);
  clearFieldErrors(passwordForm);
  if (!currentPassword.value) {
    setFieldError(currentPassword, () => t("form.current-password-required"));
  }
  if (newPassword.value.length < 12) {
    setFieldError(newPassword, () => t("form.new-password-short"));
  }
  const invalid = passwordForm.querySelector("[aria-invalid=true]");
  if (invalid) {
    invalid.focus();
    return;
  }
  let failed = null;
  await busy(passwordForm, async () => {
    try {
      await call("/v1/me/password", {
        method: "POST",
        json: { current_password: currentPassword.value, new_password: newPassword.value },
      });
    } catch (error) {
      failed = error;
    }
  });
  if (leaving) return;
  if (!failed) {
    currentPassword.value = "";
    newPassword.value = "";
    say(passwordDone, () => t("security.password.done"));
    reloadEvents();
    return;
  }
  const field = showFieldProblems(
    failed,
    // A refused new password names `password` (the rule is the sign-up's).
    { current_password: currentPassword, new_password: newPassword, password: newPassword },
    { invalid_credentials: "form.current-password-wrong" },
  );
  if (field) {
    field.focus();
    field.select();
  } else {
    say(passwordError, () => errorMessage(failed));
  }
});

function renderPasswordSection() {
  const none = document.getElementById("password-none");
  none.hidden = hasPassword();
  passwordForm.hidden = !hasPassword();
  if (!hasPassword()) none.textContent = t("security.password.none");
}

// --- Security: two-factor sign-in ---------------------------------------------------------------

const mfaState = document.getElementById("mfa-state");
const mfaDone = document.getElementById("mfa-done");
const mfaError = document.getElementById("mfa-error");
const mfaStart = document.getElementById("mfa-start");
const mfaSetup = document.getElementById("mfa-setup");
const mfaQr = document.getElementById("mfa-qr");
const mfaSecret = document.getElementById("mfa-secret");
const mfaOtpauth = document.getElementById("mfa-otpauth");
const mfaCode = document.getElementById("mfa-code");
const mfaManage = document.getElementById("mfa-manage");
const mfaManageCode = document.getElementById("mfa-manage-code");
const recovery = document.getElementById("recovery");
const recoveryList = document.getElementById("recovery-codes");
const recoveryCopied = document.getElementById("recovery-copied");

// GET /v1/me/mfa; null before the first answer. The recovery codes on show, in memory only.
let mfa = null;
let recoveryCodes = null;

function renderMfa() {
  const setUp = !mfaSetup.hidden;
  if (mfa) {
    mfaState.textContent = mfa.enabled
      ? t("security.mfa.on", { count: mfa.recovery_codes_left })
      : t("security.mfa.off-state");
  }
  mfaStart.hidden = !mfa || mfa.enabled || setUp || Boolean(recoveryCodes);
  mfaManage.hidden = !mfa || !mfa.enabled || Boolean(recoveryCodes);
  if (mfaQr.getAttribute("src")) mfaQr.alt = t("setup.qr-alt");
}

async function loadMfa() {
  try {
    mfa = await call("/v1/me/mfa");
    renderMfa();
  } catch (error) {
    if (!leaving) say(mfaError, () => errorMessage(error));
  }
}

function grouped(secret) {
  return secret.replace(/(.{4})(?=.)/g, "$1 ");
}

mfaStart.addEventListener("click", async () => {
  say(mfaDone, null);
  say(mfaError, null);
  mfaStart.disabled = true;
  let enrollment = null;
  try {
    enrollment = await call("/v1/me/mfa/totp", { method: "POST" });
  } catch (error) {
    if (!leaving) say(mfaError, () => errorMessage(error));
  } finally {
    mfaStart.disabled = false;
  }
  if (!enrollment) {
    loadMfa();
    return;
  }
  // A standalone SVG document, shown as an image: it cannot run anything or touch the page.
  mfaQr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrollment.qr_svg)}`;
  mfaSecret.textContent = grouped(enrollment.secret);
  if (/^otpauth:\/\//.test(enrollment.otpauth_uri)) mfaOtpauth.href = enrollment.otpauth_uri;
  else mfaOtpauth.removeAttribute("href");
  mfaOtpauth.hidden = !mfaOtpauth.hasAttribute("href");
  mfaCode.value = "";
  clearFieldErrors(mfaSetup);
  mfaSetup.hidden = false;
  renderMfa();
  mfaCode.focus();
});

function endSetup() {
  mfaSetup.hidden = true;
  mfaQr.removeAttribute("src");
  mfaQr.alt = "";
  mfaSecret.textContent = "";
  mfaOtpauth.removeAttribute("href");
}

document.getElementById("mfa-cancel").addEventListener("click", () => {
  endSetup();
  clearFieldErrors(mfaSetup);
  renderMfa();
  mfaStart.focus();
});

function showRecoveryCodes(codes) {
  recoveryCodes = codes;
  recoveryList.replaceChildren(
    ...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }),
  );
  say(recoveryCopied, null);
  recoveryCopied.hidden = false;
  recovery.hidden = false;
  renderMfa();
  document.getElementById("recovery-heading").focus();
}

/** The code a form's field holds, or null after marking the field (and focusing it). */
function codeOf(input) {
  const value = input.value.replace(/\s+/g, "");
  if (value.length >= 6) return value;
  setFieldError(input, () => t("form.code-required"));
  input.focus();
  return null;
}

const CODE_MESSAGES = { invalid_code: "error.invalid_code" };

function showCodeProblem(error, input, alert) {
  // `invalid_code` names no field; it is the code's all the same.
  if (error instanceof ApiError && error.code === "invalid_code") {
    setFieldError(input, () => t("error.invalid_code"));
  } else if (!showFieldProblems(error, { code: input }, CODE_MESSAGES)) {
    say(alert, () => errorMessage(error));
    return;
  }
  input.focus();
  input.select();
}

mfaSetup.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(mfaError, null);
  clearFieldErrors(mfaSetup);
  const code = codeOf(mfaCode);
  if (!code) return;
  let answer = null;
  let failed = null;
  await busy(mfaSetup, async () => {
    try {
      answer = await call("/v1/me/mfa/totp/confirm", { method: "POST", json: { code } });
    } catch (error) {
      failed = error;
    }
  });
  if (leaving) return;
  if (failed) {
    showCodeProblem(failed, mfaCode, mfaError);
    return;
  }
  endSetup();
  mfa = {
    enabled: true,
    enrollment_pending: false,
    recovery_codes_left: answer.recovery_codes.length,
  };
  say(mfaDone, () => t("security.mfa.done-on"));
  showRecoveryCodes(answer.recovery_codes);
  reloadEvents();
});

mfaManage.addEventListener("submit", async (event) => {
  event.preventDefault();
  const action = event.submitter?.value === "off" ? "off" : "codes";
  say(mfaDone, null);
  say(mfaError, null);
  clearFieldErrors(mfaManage);
  const code = codeOf(mfaManageCode);
  if (!code) return;
  let answer = null;
  let failed = null;
  await busy(mfaManage, async () => {
    try {
      answer =
        action === "off"
          ? await call("/v1/me/mfa/totp", { method: "DELETE", json: { code } })
          : await call("/v1/me/mfa/recovery-codes", { method: "POST", json: { code } });
    } catch (error) {
      failed = error;
    }
  });
  if (leaving) return;
  if (failed) {
    showCodeProblem(failed, mfaManageCode, mfaError);
    return;
  }
  mfaManageCode.value = "";
  reloadEvents();
  if (action === "off") {
    mfa = { enabled: false, enrollment_pending: false, recovery_codes_left: 0 };
    renderMfa();
    say(mfaDone, () => t("security.mfa.done-off"));
    mfaStart.focus();
  } else {
    mfa = { ...mfa, recovery_codes_left: answer.recovery_codes.length };
    say(mfaDone, () => t("security.mfa.done-codes"));
    showRecoveryCodes(answer.recovery_codes);
  }
});

function recoveryText() {
  return `${t("security.recovery.file-title")}\n\n${recoveryCodes.join("\n")}\n`;
}

document.getElementById("recovery-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(recoveryCodes.join("\n"));
    say(recoveryCopied, () => t("admin.copied"));
  } catch {
    // No clipboard here (permissions, an old browser): select them for a manual copy.
    window.getSelection().selectAllChildren(recoveryList);
    say(recoveryCopied, () => t("admin.copy-failed"));
  }
});

document.getElementById("recovery-download").addEventListener("click", () => {
  const blob = new Blob([recoveryText()], { type: "text/plain;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "support-pin-recovery-codes.txt";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
});

document.getElementById("recovery-saved").addEventListener("click", () => {
  // Shown once: gone from the page (and from memory) once the customer has them.
  recoveryCodes = null;
  recoveryList.replaceChildren();
  recovery.hidden = true;
  renderMfa();
  (mfa?.enabled ? mfaManageCode : mfaStart).focus();
});

// --- Security: passkeys -------------------------------------------------------------------------

const passkeysList = document.getElementById("passkeys");
const passkeysEmpty = document.getElementById("passkeys-empty");
const passkeysDone = document.getElementById("passkeys-done");
const passkeysError = document.getElementById("passkeys-error");
const passkeyForm = document.getElementById("passkey-form");
const passkeyName = document.getElementById("passkey-name");
const canAddPasskeys = passkeysPossible();

let passkeys = null;

function renderPasskeys() {
  document.getElementById("passkeys-unsupported").hidden = canAddPasskeys;
  passkeyForm.hidden = !canAddPasskeys;
  if (!passkeys) return;
  passkeysEmpty.hidden = passkeys.length > 0;
  passkeysList.replaceChildren(
    ...passkeys.map((passkey) => {
      const item = document.createElement("li");
      item.className = "passkey";
      item.dataset.id = passkey.id;
      const about = document.createElement("div");
      const name = document.createElement("p");
      name.className = "passkey-name";
      name.id = `passkey-${passkey.id}`;
      name.textContent = passkey.name;
      const dates = document.createElement("p");
      dates.className = "passkey-when small muted";
      const when = (at) => formatDateTime(new Date(at));
      const added = t("security.passkeys.added", { time: when(passkey.created_at) });
      const used = passkey.last_used_at
        ? t("security.passkeys.used", { time: when(passkey.last_used_at) })
        : t("security.passkeys.never-used");
      dates.textContent = `${added} · ${used}`;
      about.append(name, dates);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-secondary btn-small btn-danger";
      remove.textContent = t("security.passkeys.remove");
      remove.setAttribute("aria-label", t("security.passkeys.remove-of", { name: passkey.name }));
      remove.addEventListener("click", () => removePasskey(passkey, remove));
      item.append(about, remove);
      return item;
    }),
  );
}

async function loadPasskeys() {
  try {
    passkeys = (await call("/v1/me/passkeys")).passkeys;
    renderPasskeys();
  } catch (error) {
    if (!leaving) say(passkeysError, () => errorMessage(error));
  }
}

async function removePasskey(passkey, button) {
  say(passkeysDone, null);
  say(passkeysError, null);
  button.disabled = true;
  try {
    await call(`/v1/me/passkeys/${encodeURIComponent(passkey.id)}`, { method: "DELETE" });
    say(passkeysDone, () => t("security.passkeys.removed", { name: passkey.name }));
  } catch (error) {
    button.disabled = false;
    if (leaving) return;
    if (!(error instanceof ApiError && error.status === 404)) {
      say(passkeysError, () => errorMessage(error));
      return;
    }
  }
  await loadPasskeys();
  reloadEvents();
  passkeyName.focus();
}

passkeyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(passkeysDone, null);
  say(passkeysError, null);
  clearFieldErrors(passkeyForm);
  const name = passkeyName.value.trim();
  if (!name) {
    setFieldError(passkeyName, () => t("form.passkey-name-required"));
    passkeyName.focus();
    return;
  }
  let added = null;
  let failed = null;
  await busy(passkeyForm, async () => {
    let credential;
    try {
      const options = await call("/v1/me/passkeys/options", { method: "POST" });
      credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    } catch (error) {
      failed = error;
      return;
    }
    try {
      added = await call("/v1/me/passkeys", {
        method: "POST",
        json: { name, credential: credentialJson(credential) },
      });
    } catch (error) {
      failed = error;
    }
  });
  if (leaving) return;
  if (failed) {
    if (failed instanceof ApiError) {
      const field = showFieldProblems(failed, { name: passkeyName });
      const overrides = { passkey_refused: "passkey.error.refused" };
      if (field) field.focus();
      else say(passkeysError, () => errorMessage(failed, overrides));
    } else {
      say(passkeysError, () => t(passkeyFailure(failed)));
    }
    return;
  }
  passkeyName.value = "";
  say(passkeysDone, () => t("security.passkeys.done", { name: added.name }));
  await loadPasskeys();
  reloadEvents();
});

// --- Deleting the account -----------------------------------------------------------------------

const deleteDialog = document.getElementById("delete-dialog");
const deleteForm = document.getElementById("delete-form");
const deleteError = document.getElementById("delete-error");
const deletePassword = document.getElementById("delete-password");

document.getElementById("delete-open").addEventListener("click", () => {
  say(deleteError, null);
  clearFieldErrors(deleteForm);
  deletePassword.value = "";
  document.getElementById("delete-password-field").hidden = !hasPassword();
  document.getElementById("delete-no-password").hidden = hasPassword();
  deleteDialog.showModal();
  (hasPassword() ? deletePassword : document.getElementById("delete-cancel")).focus();
});

document.getElementById("delete-cancel").addEventListener("click", () => deleteDialog.close());
deleteDialog.addEventListener("close", () => document.getElementById("delete-open").focus());

deleteForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(deleteError, null);
  clearFieldErrors(deleteForm);
  if (hasPassword() && !deletePassword.value) {
    setFieldError(deletePassword, () => t("form.password-required"));
    deletePassword.focus();
    return;
  }
  let failed = null;
  // Deleting ends every session and stream: this page is not to take that for a lost session.
  stream?.close();
  await busy(deleteForm, async () => {
    try {
      const body = hasPassword() ? { password: deletePassword.value } : {};
      await api("/v1/me", { method: "DELETE", token, json: body });
    } catch (error) {
      failed = error;
    }
  });
  if (!failed) {
    leave("signin.account-deleted");
    return;
  }
  if (failed instanceof ApiError && failed.status === 401) {
    leave("signin.session-ended");
    return;
  }
  startStream();
  const field = showFieldProblems(
    failed,
    { password: deletePassword },
    { invalid_credentials: "form.password-wrong" },
  );
  if (field) {
    field.focus();
    field.select();
  } else {
    say(deleteError, () => errorMessage(failed));
  }
});

onLanguageChange(() => {
  renderEvents();
  renderDialog();
  renderContact();
  renderLiveCheck();
  renderPrompt();
  renderPasswordSection();
  renderMfa();
  renderPasskeys();
  for (const [element, text] of shownMessages) showMessage(element, text());
});

if (!token) {
  leave("signin.session-ended");
} else {
  await startPage();
  renderPasskeys();
  // The stream first, then the reads: nothing that happens in between is missed.
  startStream();
  loadContact();
  loadConfirmations();
  try {
    me = await call("/v1/me");
    document.getElementById("account-email").textContent = me.email ?? "";
    renderPasswordSection();
  } catch (error) {
    if (!leaving) showMessage(errorBox, errorMessage(error));
  }
  loadMfa();
  loadPasskeys();
  await loadEvents();
}
