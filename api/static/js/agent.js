// The agent console: support staff sign in (single sign-on, or email, password and an
// authenticator code), then verify a caller's PIN against the email of the account discussed, or
// ask the caller to confirm on their account page which number the agent reads (number matching).
import {
  api,
  ApiError,
  busy,
  errorMessage,
  formatTime,
  hasMessage,
  onLanguageChange,
  showMessage,
  startPage,
  t,
} from "./app.js";
import { followEventStream } from "./event-stream.js";
import { clearStaffSession, roleName, saveStaffSession, staffToken } from "./staff-session.js";

const errorBox = document.getElementById("error");
const noticeBox = document.getElementById("notice");
const signinPanel = document.getElementById("signin-panel");
const ssoBox = document.getElementById("sso");
const ssoLink = document.getElementById("sso-link");
const ssoOr = document.getElementById("sso-or");
const passwordStep = document.getElementById("password-step");
const codeStep = document.getElementById("code-step");
const staffEmail = document.getElementById("staff-email");
const staffPassword = document.getElementById("staff-password");
const staffCode = document.getElementById("staff-code");
const consolePanel = document.getElementById("console");
const staffWho = document.getElementById("staff-who");
const adminLink = document.getElementById("admin-link");
const form = document.getElementById("verify-form");
const emailInput = document.getElementById("caller-email");
const pinInput = document.getElementById("pin");
const caseInput = document.getElementById("case-ref");
const resultBox = document.getElementById("result");
const resultAttempt = document.getElementById("result-attempt");
const resultTitle = document.getElementById("result-title");
const resultDetail = document.getElementById("result-detail");
const historyCard = document.getElementById("history-card");
const historyList = document.getElementById("history");
const askButton = document.getElementById("ask-confirm");
const confirmationBox = document.getElementById("confirmation");
const confirmationFor = document.getElementById("confirmation-for");
const confirmationCode = document.getElementById("confirmation-code");
const confirmationTitle = document.getElementById("confirmation-title");
const confirmationDetail = document.getElementById("confirmation-detail");

// The provider sends the browser back here with `#sso=<one-time code>` or `#sso_error=<reason>`.
// Drop the fragment at once, so the code stays neither in the address bar nor in the history.
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (window.location.hash) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}
const ssoCode = fragment.get("sso");
const ssoError = fragment.get("sso_error");

// Why a staff single sign-on failed (`reason` of the callback or of the code exchange).
const SSO_ERRORS = {
  state: "signin.sso.error.state",
  provider_error: "signin.sso.error.provider_error",
  token: "signin.sso.error.token",
  id_token: "signin.sso.error.token",
  code: "signin.sso.error.code",
  email: "agent.sso.error.email",
  not_staff: "agent.sso.error.not_staff",
  invalid_credentials: "agent.sso.error.disabled",
  staff_exists: "agent.sso.error.staff_exists",
};

// What the sign-in offers (GET /v1/staff/auth/methods); null when that could not be read.
let methods = null;
// The signed-in staff member (GET /v1/staff/me) and their token; null when signed out.
let me = null;
let token = null;
// The short-lived token that links the two sign-in steps; in memory only.
let mfaToken = null;
// A message on show that follows a language switch: { box, text (a function giving it),
// shown (the text as shown, so one put there since by a form is left alone) }.
const shown = new Map();

// Every check in this tab, oldest first: { email, valid, at (Date), verifiedAt (Date|null) }.
const checks = [];
// True from the start of a check until its answer: no earlier answer is shown meanwhile (nor
// after a check that failed to get one).
let checking = false;
// The confirmation asked for last: { id, code, email, at (Date), expiresAt (Date), status
// (pending, approved, denied, expired), decidedAt (Date|null) }; and its live status stream.
let confirmation = null;
let confirmationStream = null;
// Which answer is on show, "check" or "confirmation": a new request of either kind hides the
// previous one, so it cannot be read as the new one's.
let shownResult = null;

function say(box, text) {
  if (!text) {
    shown.delete(box);
    return showMessage(box, "");
  }
  const entry = { text, shown: text() };
  shown.set(box, entry);
  showMessage(box, entry.shown);
}

function resaySaid() {
  for (const [box, entry] of shown) {
    if (!box.hidden && box.textContent === entry.shown) say(box, entry.text);
  }
}

function clearMessages() {
  say(errorBox, null);
  say(noticeBox, null);
}

function providerName() {
  return methods?.sso?.display_name || t("signin.sso.provider");
}

function ssoErrorText(reason) {
  const key = Object.hasOwn(SSO_ERRORS, reason) ? SSO_ERRORS[reason] : "signin.sso.error.other";
  return () => t(hasMessage(key) ? key : "signin.sso.error.other", { provider: providerName() });
}

function renderResult() {
  const last = checks.at(-1);
  resultBox.hidden = !last || checking || shownResult !== "check";
  if (!last) return;
  const sameCaller = checks.filter((check) => check.email === last.email).length;
  resultBox.dataset.result = last.valid ? "verified" : "not-verified";
  resultBox.className = `result ${last.valid ? "result-ok" : "result-bad"}`;
  resultAttempt.textContent =
    sameCaller > 1
      ? t("agent.result.repeat", { n: sameCaller, time: formatTime(last.at) })
      : t("agent.result.attempt", { n: checks.length, time: formatTime(last.at) });
  resultTitle.textContent = last.valid ? t("agent.result.verified") : t("agent.result.not-verified");
  resultDetail.textContent = last.valid
    ? t("agent.result.verified.detail", { email: last.email, time: formatTime(last.verifiedAt) })
    : t("agent.result.not-verified.detail", { email: last.email });
}

function renderHistory() {
  historyCard.hidden = checks.length === 0;
  historyList.replaceChildren(
    ...[...checks].reverse().map((check) => {
      const item = document.createElement("li");
      item.className = `event ${check.valid ? "event-verified" : "event-verify_failed"}`;
      const what = document.createElement("span");
      what.className = "event-what";
      what.textContent = t(check.valid ? "agent.history.verified" : "agent.history.not-verified", {
        email: check.email,
      });
      const when = document.createElement("time");
      when.className = "event-when";
      when.dateTime = check.at.toISOString();
      when.textContent = formatTime(check.at);
      item.append(what, when);
      return item;
    }),
  );
}

function renderConfirmation() {
  confirmationBox.hidden = !confirmation || shownResult !== "confirmation";
  if (!confirmation) return;
  const { status } = confirmation;
  const style = { pending: "result-wait", approved: "result-ok" }[status] ?? "result-bad";
  confirmationBox.className = `result ${style}`;
  confirmationBox.dataset.status = status;
  confirmationFor.textContent = t("agent.confirm.for", {
    email: confirmation.email,
    time: formatTime(confirmation.at),
  });
  confirmationCode.textContent = confirmation.code;
  confirmationTitle.textContent = t(`agent.confirm.${status}`);
  const time = status === "pending" ? confirmation.expiresAt : confirmation.decidedAt;
  confirmationDetail.textContent = t(`agent.confirm.${status}.detail`, {
    email: confirmation.email,
    time: time ? formatTime(time) : "",
  });
}

/** The confirmation's state, live, until it is decided or expires. */
function followConfirmation(followed) {
  const path = `/v1/agent/confirmations/${encodeURIComponent(followed.id)}/stream`;
  confirmationStream = followEventStream(path, {
    token,
    onEvent: ({ event, data }) => {
      if (event !== "status" || confirmation !== followed) return;
      const state = JSON.parse(data);
      followed.status = state.status;
      followed.decidedAt = state.decided_at ? new Date(state.decided_at) : null;
      renderConfirmation();
    },
    // The stream ends with the decision; one cut off before it is opened again.
    shouldReconnect: () => confirmation === followed && followed.status === "pending",
    onRefused: (status) => {
      if (confirmation !== followed) return;
      if (status === 401) {
        showSignIn("signin.session-ended");
      } else if (status === 404) {
        // Kept only for a while after it ended.
        followed.status = "expired";
        renderConfirmation();
      }
    },
  });
}

function dropConfirmation() {
  confirmationStream?.close();
  confirmationStream = null;
  confirmation = null;
  renderConfirmation();
}

function renderWho() {
  if (!me) return;
  staffWho.textContent = t("agent.signed-in-as", { name: me.name, role: roleName(t, me.role) });
}

/** The sign-in offers: the provider's button when there is one, and the built-in form. */
function showMethods() {
  const sso = methods?.sso ?? null;
  if (sso) {
    ssoLink.href = sso.login_url;
    ssoLink.textContent = t("signin.sso.button", { provider: sso.display_name });
  }
  ssoBox.hidden = !sso;
  ssoOr.hidden = !sso;
}

function showPasswordStep() {
  mfaToken = null;
  staffCode.value = "";
  codeStep.hidden = true;
  passwordStep.hidden = false;
  staffPassword.value = "";
}

/** Back to the sign-in panel: the session is gone here (and on the server when it ended),
 * unless `keepSession` (the service could not be asked; a reload tries it again). */
function showSignIn(message, { keepSession = false } = {}) {
  if (!keepSession) clearStaffSession();
  me = null;
  token = null;
  checks.length = 0;
  shownResult = null;
  dropConfirmation();
  renderResult();
  renderHistory();
  consolePanel.hidden = true;
  signinPanel.hidden = false;
  showPasswordStep();
  say(errorBox, null);
  say(noticeBox, message ? () => t(message) : null);
  staffEmail.focus();
}

/** Opens the console for the session in `token`; back to sign-in if the session is gone. */
async function showConsole() {
  try {
    me = await api("/v1/staff/me", { token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignIn("signin.session-ended");
      return;
    }
    throw error;
  }
  signinPanel.hidden = true;
  consolePanel.hidden = false;
  adminLink.hidden = !["supervisor", "admin"].includes(me.role);
  renderWho();
  emailInput.focus();
}

async function signedIn(answer) {
  saveStaffSession(answer);
  token = answer.access_token;
  mfaToken = null;
  clearMessages();
  try {
    await showConsole();
  } catch (error) {
    say(errorBox, () => errorMessage(error));
  }
}

/** Exchanges the provider's one-time code for a session; a function giving the error's text
 * when that did not work. */
async function finishProviderSignIn(oneTimeCode) {
  say(noticeBox, () => t("signin.sso.finishing"));
  try {
    const answer = await api("/v1/staff/auth/oidc/token", {
      method: "POST",
      json: { code: oneTimeCode },
    });
    say(noticeBox, null);
    await signedIn(answer);
    return null;
  } catch (error) {
    say(noticeBox, null);
    if (error instanceof ApiError && error.code === "oidc_failed") {
      return ssoErrorText(error.problem?.reason ?? "code");
    }
    return () => errorMessage(error);
  }
}

passwordStep.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(noticeBox, null);
  if (!staffEmail.value.trim()) return say(errorBox, () => t("form.email-required"));
  if (!staffPassword.value) return say(errorBox, () => t("form.password-required"));
  say(errorBox, null);
  await busy(passwordStep, async () => {
    try {
      // Staff always have a second step: a right password answers 401 mfa_required.
      await signedIn(
        await api("/v1/staff/auth/token", {
          method: "POST",
          form: { username: staffEmail.value.trim(), password: staffPassword.value },
        }),
      );
    } catch (error) {
      if (error instanceof ApiError && error.code === "mfa_required" && error.problem?.mfa_token) {
        mfaToken = error.problem.mfa_token;
        staffPassword.value = "";
        passwordStep.hidden = true;
        codeStep.hidden = false;
        return;
      }
      say(errorBox, () => errorMessage(error));
    }
  });
  if (!codeStep.hidden) staffCode.focus();
  else if (!signinPanel.hidden) staffPassword.select();
});

codeStep.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = staffCode.value.replace(/\s+/g, "");
  if (!value) return say(errorBox, () => t("form.code-required"));
  say(errorBox, null);
  let restart = false;
  await busy(codeStep, async () => {
    try {
      await signedIn(
        await api("/v1/staff/auth/token/mfa", {
          method: "POST",
          json: { mfa_token: mfaToken, code: value },
        }),
      );
    } catch (error) {
      // An unknown or expired step token means starting again from the password.
      if (error instanceof ApiError && error.status === 401 && error.code !== "invalid_code") {
        restart = true;
        showPasswordStep();
        say(errorBox, () => t("error.mfa_expired"));
        return;
      }
      say(errorBox, () => errorMessage(error));
    }
  });
  if (restart) staffEmail.focus();
  else if (!codeStep.hidden && !signinPanel.hidden) staffCode.select();
});

document.getElementById("code-back").addEventListener("click", () => {
  say(errorBox, null);
  showPasswordStep();
  staffEmail.focus();
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  // The previous answer goes the moment a new check starts, so it cannot be read as this one.
  resultBox.hidden = true;
  shownResult = null;
  dropConfirmation();
  const email = emailInput.value.trim();
  const pin = pinInput.value.replace(/\s+/g, "");
  const caseRef = caseInput.value.trim();
  say(noticeBox, null);
  if (!email) return say(errorBox, () => t("form.caller-email-required"));
  if (!/^[0-9]{6,10}$/.test(pin)) return say(errorBox, () => t("form.pin-invalid"));
  say(errorBox, null);
  let ended = false;
  checking = true;
  await busy(form, async () => {
    try {
      const answer = await api("/v1/agent/verifications", {
        method: "POST",
        token,
        json: caseRef ? { email, pin, case_ref: caseRef } : { email, pin },
      });
      checks.push({
        // The address as the service spells it (normalized), which is what was checked.
        email: typeof answer.email === "string" ? answer.email : email,
        valid: answer.valid === true,
        at: new Date(),
        verifiedAt: answer.verified_at ? new Date(answer.verified_at) : null,
      });
      pinInput.value = "";
      checking = false;
      shownResult = "check";
      renderResult();
      renderHistory();
      resultBox.scrollIntoView({ block: "nearest" });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        ended = true;
        return;
      }
      say(errorBox, () => errorMessage(error));
    }
  });
  if (ended) {
    showSignIn("signin.session-ended");
    return;
  }
  // After the answer: ready for the next caller's PIN.
  pinInput.focus();
});

askButton.addEventListener("click", async () => {
  resultBox.hidden = true;
  shownResult = null;
  dropConfirmation();
  const email = emailInput.value.trim();
  const caseRef = caseInput.value.trim();
  say(noticeBox, null);
  if (!email) return say(errorBox, () => t("form.caller-email-required"));
  say(errorBox, null);
  let ended = false;
  await busy(form, async () => {
    try {
      const answer = await api("/v1/agent/confirmations", {
        method: "POST",
        token,
        json: caseRef ? { email, case_ref: caseRef } : { email },
      });
      confirmation = {
        id: answer.id,
        code: answer.code,
        email,
        at: new Date(),
        expiresAt: new Date(answer.expires_at),
        status: "pending",
        decidedAt: null,
      };
      shownResult = "confirmation";
      renderConfirmation();
      followConfirmation(confirmation);
      confirmationBox.scrollIntoView({ block: "nearest" });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        ended = true;
        return;
      }
      say(errorBox, () => errorMessage(error));
    }
  });
  if (ended) showSignIn("signin.session-ended");
});

document.getElementById("sign-out").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await api("/v1/staff/auth/logout", { method: "POST", token });
  } catch {
    // Signing out locally still happens; the session also expires by itself.
  } finally {
    button.disabled = false;
  }
  showSignIn("signin.signed-out");
});

onLanguageChange(() => {
  showMethods();
  renderWho();
  renderResult();
  renderHistory();
  renderConfirmation();
  resaySaid();
});

// Read before the messages, so the page shows once, with the right parts (the body stays
// hidden until startPage is done).
token = ssoCode ? null : staffToken();
if (!ssoCode) methods = await api("/v1/staff/auth/methods").catch(() => null);
showMethods();
await startPage();
showMethods(); // again, for the button's words in the page's language
if (ssoCode) {
  const failed = await finishProviderSignIn(ssoCode);
  if (failed) {
    methods = await api("/v1/staff/auth/methods").catch(() => null);
    showSignIn(null);
    showMethods();
    say(errorBox, failed);
  }
} else if (token) {
  try {
    await showConsole();
  } catch (error) {
    showSignIn(null, { keepSession: true });
    say(errorBox, () => errorMessage(error));
  }
} else {
  showSignIn(null);
  if (ssoError) say(errorBox, ssoErrorText(ssoError));
}
