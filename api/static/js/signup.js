// Create an account, then sign in with it and go to the account page. When password sign-in
// is off, accounts come from the company's OpenID provider: a note points to the sign-in page.
import {
  api,
  busy,
  errorMessage,
  onLanguageChange,
  saveSession,
  showMessage,
  startPage,
  t,
} from "./app.js";

const form = document.getElementById("signup-form");
const errorBox = document.getElementById("error");
const email = document.getElementById("email");
const password = document.getElementById("password");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!email.value.trim()) return showMessage(errorBox, t("form.email-required"));
  if (password.value.length < 12) return showMessage(errorBox, t("form.password-short"));
  showMessage(errorBox, "");
  await busy(form, async () => {
    try {
      const address = email.value.trim();
      await api("/v1/accounts", { method: "POST", json: { email: address, password: password.value } });
      saveSession(
        await api("/v1/auth/token", {
          method: "POST",
          form: { username: address, password: password.value },
        }),
      );
      window.location.assign("/account");
    } catch (error) {
      showMessage(errorBox, errorMessage(error));
    }
  });
});

// What the service offers; without an answer, the form as always (the server still refuses).
const methods = await api("/v1/auth/methods").catch(() => null);
const passwordOff = methods?.password === false;
const passwordOffText = document.getElementById("password-off-text");

function showPasswordOff() {
  passwordOffText.textContent = t("signup.password-off", {
    provider: methods?.oidc?.display_name || t("signin.sso.provider"),
  });
}

if (passwordOff) {
  for (const id of ["signup-intro", "signup-form", "signin-footer"]) {
    document.getElementById(id).hidden = true;
  }
  document.getElementById("password-off").hidden = false;
}
await startPage();
if (passwordOff) {
  showPasswordOff();
  onLanguageChange(showPasswordOff);
} else {
  email.focus();
}
