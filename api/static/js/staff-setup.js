// A built-in staff member's set-up, from the link an administrator gave them
// (/staff/setup#token=sst_…): a password, then an authenticator app confirmed with a code.
import { api, ApiError, busy, errorMessage, onLanguageChange, showMessage, startPage, t } from "./app.js";

const errorBox = document.getElementById("error");
const passwordStep = document.getElementById("password-step");
const codeStep = document.getElementById("code-step");
const done = document.getElementById("done");
const password = document.getElementById("password");
const code = document.getElementById("code");
const qr = document.getElementById("qr");
const secretText = document.getElementById("secret");
const otpauthLink = document.getElementById("otpauth-link");

// The link's secret rides in the fragment (never sent to a server). Read it, then drop it from
// the address bar and the history at once; it stays in memory only.
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (window.location.hash) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}
const setupToken = fragment.get("token");

// The error on show, redrawn on a language switch: { text (a function), shown (as shown) }.
let shownError = null;

function showError(text) {
  shownError = text ? { text, shown: text() } : null;
  showMessage(errorBox, shownError ? shownError.shown : "");
}

/** A failed call's message; a dead link gets its own words (and ends the set-up here). */
function failure(error) {
  if (error instanceof ApiError && error.status === 401 && error.code !== "invalid_code") {
    passwordStep.hidden = true;
    codeStep.hidden = true;
    return () => t("setup.link-invalid");
  }
  return () => errorMessage(error);
}

/** The secret in groups of four, for typing it in by hand. */
function grouped(secret) {
  return secret.replace(/(.{4})(?=.)/g, "$1 ");
}

passwordStep.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (password.value.length < 12) return showError(() => t("form.password-short"));
  showError(null);
  let enrollment = null;
  await busy(passwordStep, async () => {
    try {
      enrollment = await api("/v1/staff/setup", {
        method: "POST",
        json: { token: setupToken, password: password.value },
      });
    } catch (error) {
      showError(failure(error));
    }
  });
  if (!enrollment) {
    if (!passwordStep.hidden) password.select();
    return;
  }
  password.value = "";
  // A standalone SVG document, shown as an image: it cannot run anything or touch the page.
  qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrollment.qr_svg)}`;
  qr.alt = t("setup.qr-alt");
  secretText.textContent = grouped(enrollment.secret);
  if (/^otpauth:\/\//.test(enrollment.otpauth_uri)) otpauthLink.href = enrollment.otpauth_uri;
  otpauthLink.hidden = !otpauthLink.href;
  passwordStep.hidden = true;
  codeStep.hidden = false;
  code.focus();
});

codeStep.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = code.value.replace(/\s+/g, "");
  if (!/^[0-9]{6}$/.test(value)) return showError(() => t("form.code-required"));
  showError(null);
  let finished = false;
  await busy(codeStep, async () => {
    try {
      await api("/v1/staff/setup/confirm", { method: "POST", json: { token: setupToken, code: value } });
      finished = true;
    } catch (error) {
      showError(failure(error));
    }
  });
  if (!finished) {
    if (!codeStep.hidden) code.select();
    return;
  }
  codeStep.hidden = true;
  done.hidden = false;
  document.getElementById("done-heading").focus();
});

onLanguageChange(() => {
  if (qr.getAttribute("src")) qr.alt = t("setup.qr-alt");
  if (shownError && !errorBox.hidden && errorBox.textContent === shownError.shown) {
    showError(shownError.text);
  }
});

const usable = typeof setupToken === "string" && /^sst_[A-Za-z0-9_-]{8,124}$/.test(setupToken);
passwordStep.hidden = !usable;
await startPage();
if (usable) {
  password.focus();
} else {
  showError(() => t("setup.no-token"));
}
