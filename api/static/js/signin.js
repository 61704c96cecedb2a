// The sign-in page: email and password, then the second factor when the account has one.
import {
  api,
  ApiError,
  busy,
  errorMessage,
  onLanguageChange,
  saveSession,
  sessionToken,
  showMessage,
  startPage,
  t,
  takeNotice,
} from "./app.js";

const passwordStep = document.getElementById("password-step");
const codeStep = document.getElementById("code-step");
const errorBox = document.getElementById("error");
const noticeBox = document.getElementById("notice");
const email = document.getElementById("email");
const password = document.getElementById("password");
const code = document.getElementById("code");

// The short-lived token that links the two steps; in memory only.
let mfaToken = null;

function signedIn(answer) {
  saveSession(answer);
  window.location.assign("/account");
}

function showPasswordStep() {
  mfaToken = null;
  code.value = "";
  codeStep.hidden = true;
  passwordStep.hidden = false;
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

document.getElementById("code-back").addEventListener("click", () => {
  showMessage(errorBox, "");
  showPasswordStep();
});

await startPage();
if (sessionToken()) {
  window.location.replace("/account");
} else {
  const notice = takeNotice();
  if (notice) {
    showMessage(noticeBox, t(notice));
    onLanguageChange(() => showMessage(noticeBox, noticeBox.hidden ? "" : t(notice)));
  }
  email.focus();
}
