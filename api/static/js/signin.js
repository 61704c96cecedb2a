// The sign-in page: email and password, then the second factor when the account has one;
// a passkey; "Forgot password?"; and sign-in through the company's OpenID provider when the
// service has one.
import {
  api,
  ApiError,
  busy,
  errorMessage,
  hasMessage,
  onLanguageChange,
  saveSession,
  sessionToken,
  showMessage,
  startPage,
  t,
  takeNotice,
} from "./app.js";
import { credentialJson, passkeyFailure, passkeysPossible, requestOptions } from "./webauthn.js";

const passwordStep = document.getElementById("password-step");
const codeStep = document.getElementById("code-step");
const errorBox = document.getElementById("error");
const noticeBox = document.getElementById("notice");
const email = document.getElementById("email");
const password = document.getElementById("password");
const code = document.getElementById("code");
const ssoBox = document.getElementById("sso");
const ssoLink = document.getElementById("sso-link");
const ssoOr = document.getElementById("sso-or");
const signupFooter = document.getElementById("signup-footer");
const passkeyBox = document.getElementById("passkey-box");
const passkeyButton = document.getElementById("passkey-sign-in");

// The provider sends the browser back here with `#sso=<one-time code>` or `#sso_error=<reason>`.
// Drop the fragment at once, so the code stays neither in the address bar nor in the history.
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (window.location.hash) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}
const ssoCode = fragment.get("sso");
const ssoError = fragment.get("sso_error");

// Why a provider sign-in failed (`reason` of the callback or of the code exchange).
const SSO_ERRORS = {
  state: "signin.sso.error.state",
  provider_error: "signin.sso.error.provider_error",
  token: "signin.sso.error.token",
  id_token: "signin.sso.error.token",
  code: "signin.sso.error.code",
};

// The short-lived token that links the two steps; in memory only.
let mfaToken = null;
// What the page offers (GET /v1/auth/methods); null when that could not be read.
let methods = null;
// The provider sign-in's error on show, redrawn on a language switch: { text (a function
// giving it), shown (the text as shown, so one put there since by a form is left alone) }.
let shownError = null;

function showError(text) {
  shownError = { text, shown: text() };
  showMessage(errorBox, shownError.shown);
}

function providerName() {
  return methods?.oidc?.display_name || t("signin.sso.provider");
}

function ssoErrorText(reason) {
  const key = Object.hasOwn(SSO_ERRORS, reason) ? SSO_ERRORS[reason] : "signin.sso.error.other";
  return () => t(hasMessage(key) ? key : "signin.sso.error.other", { provider: providerName() });
}

/** Shows what the service offers: the provider's button, the password form, or both. */
function showMethods() {
  // Without an answer, the password form as always: the server still refuses what is off.
  const password = methods ? methods.password !== false : true;
  const oidc = methods?.oidc ?? null;
  if (oidc) {
    ssoLink.href = oidc.login_url;
    ssoLink.classList.toggle("btn-primary", !password);
    ssoLink.classList.toggle("btn-secondary", password);
    ssoLink.textContent = t("signin.sso.button", { provider: oidc.display_name });
  }
  ssoBox.hidden = !oidc;
  ssoOr.hidden = !(oidc && password);
  passwordStep.hidden = !password || mfaToken !== null;
  if (!password) codeStep.hidden = true;
  signupFooter.hidden = !password;
  passkeyBox.hidden = !passkeysPossible() || mfaToken !== null;
}

/** The path the sign-in was started for, if it is one of this site's; else the account page. */
function landingPath(next) {
  return typeof next === "string" && /^\/(?![\/\\])/.test(next) ? next : "/account";
}

/** Exchanges the one-time code for a session and goes on; null then, else the error's text. */
async function finishProviderSignIn(oneTimeCode) {
  showMessage(noticeBox, t("signin.sso.finishing"));
  try {
    const answer = await api("/v1/auth/oidc/token", { method: "POST", json: { code: oneTimeCode } });
    saveSession(answer);
    window.location.replace(landingPath(answer.next));
    return null;
  } catch (error) {
    showMessage(noticeBox, "");
    if (error instanceof ApiError && error.code === "oidc_failed") {
      return ssoErrorText(error.problem?.reason ?? "code");
    }
    return () => errorMessage(error);
  }
}

function signedIn(answer) {
  saveSession(answer);
  window.location.assign("/account");
}

function showPasswordStep() {
  mfaToken = null;
  code.value = "";
  codeStep.hidden = true;
  passwordStep.hidden = false;
  passkeyBox.hidden = !passkeysPossible();
  password.value = "";
  email.focus();
}

passwordStep.addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage(noticeBox, "");
  if (!email.value.trim()) return showMessage(errorBox, t("form.email-required"));
  if (!password.value) return showMessage(errorBox, t("form.password-required"));
  showMessage(errorBox, "");
  await busy(passwordStep, async () => {
    try {
      signedIn(
        await api("/v1/auth/token", {
          method: "POST",
          form: { username: email.value.trim(), password: password.value },
        }),
      );
    } catch (error) {
      if (error instanceof ApiError && error.code === "mfa_required" && error.problem?.mfa_token) {
        mfaToken = error.problem.mfa_token;
        password.value = "";
        passwordStep.hidden = true;
        passkeyBox.hidden = true;
        codeStep.hidden = false;
        code.focus();
        return;
      }
      showMessage(errorBox, errorMessage(error));
      password.select();
    }
  });
});

codeStep.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = code.value.replace(/\s+/g, "");
  if (!value) return showMessage(errorBox, t("form.code-required"));
  showMessage(errorBox, "");
  await busy(codeStep, async () => {
    try {
      signedIn(
        await api("/v1/auth/token/mfa", { method: "POST", json: { mfa_token: mfaToken, code: value } }),
      );
    } catch (error) {
      // An unknown or expired step token means starting again from the password.
      if (error instanceof ApiError && error.status === 401 && error.code !== "invalid_code") {
        showPasswordStep();
        showMessage(errorBox, t("error.mfa_expired"));
        return;
      }
      showMessage(errorBox, errorMessage(error));
      code.select();
    }
  });
});

// A passkey: a complete sign-in (the device's screen lock is the second factor), no email asked.
passkeyButton.addEventListener("click", async () => {
  showMessage(noticeBox, "");
  showMessage(errorBox, "");
  await busy(passkeyBox, async () => {
    let credential;
    try {
      const options = await api("/v1/auth/passkey/options", { method: "POST" });
      credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    } catch (error) {
      const text = error instanceof ApiError ? errorMessage(error) : t(passkeyFailure(error));
      showMessage(errorBox, text);
      return;
    }
    try {
      const json = { credential: credentialJson(credential) };
      signedIn(await api("/v1/auth/passkey", { method: "POST", json }));
    } catch (error) {
      const overrides = { invalid_credentials: "signin.passkey.rejected" };
      showMessage(errorBox, errorMessage(error, overrides));
    }
  });
});

document.getElementById("code-back").addEventListener("click", () => {
  showMessage(errorBox, "");
  showPasswordStep();
});

// Read before the messages, so the page shows once, with the right parts (the body stays
// hidden until startPage is done).
if (ssoCode) {
  ssoBox.hidden = true;
  passwordStep.hidden = true;
  signupFooter.hidden = true;
} else {
  methods = await api("/v1/auth/methods").catch(() => null);
  showMethods();
}
await startPage();
if (methods?.oidc) showMethods(); // again, for the button's words in the page's language
onLanguageChange(() => {
  if (methods?.oidc) showMethods();
  if (shownError && !errorBox.hidden && errorBox.textContent === shownError.shown) {
    showError(shownError.text);
  }
});
const failed = ssoCode ? await finishProviderSignIn(ssoCode) : null;
if (ssoCode && !failed) {
  // On the way to where the sign-in was started for.
} else if (!ssoCode && !ssoError && sessionToken()) {
  window.location.replace("/account");
} else {
  if (ssoCode) {
    methods = await api("/v1/auth/methods").catch(() => null);
    showMethods();
  }
  if (failed || ssoError) showError(failed || ssoErrorText(ssoError));
  const notice = takeNotice();
  if (notice) {
    showMessage(noticeBox, t(notice));
    onLanguageChange(() => showMessage(noticeBox, noticeBox.hidden ? "" : t(notice)));
  }
  if (!passwordStep.hidden) email.focus();
}
