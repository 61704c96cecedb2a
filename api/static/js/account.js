// The account page: who is signed in, Support PIN activity, sign-out and the Support PIN dialog;
// live (an event stream): whether Support is in contact right now, checks as they happen (with
// "Wasn't you? Lock support access"), and Support's requests to confirm it is the customer.
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
import { followEventStream } from "./event-stream.js";

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
let events = [];
// The PIN shown in the dialog, in memory only: { pin, expiresAt (Date), deadline (ms), issuedAt }.
let current = null;
// What the dialog says about the state of the PIN: { key, values } or null.
let notice = null;
let ticker = null;

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
  eventsList.replaceChildren(
    ...events.map((event, index) => {
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
}

async function loadEvents() {
  try {
    events = (await call("/v1/me/support-pin/events?limit=20")).events;
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
  stream?.close();
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
  renderContact();
  renderLiveCheck();
  renderPrompt();
});

if (!token) {
  leave("signin.session-ended");
} else {
  await startPage();
  // The stream first, then the reads: nothing that happens in between is missed.
  startStream();
  loadContact();
  loadConfirmations();
  try {
    const me = await call("/v1/me");
    document.getElementById("account-email").textContent = me.email;
  } catch (error) {
    if (!leaving) showMessage(errorBox, errorMessage(error));
  }
  await loadEvents();
}
