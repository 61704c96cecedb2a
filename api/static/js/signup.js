// Create an account, then sign in with it and go to the account page.
import { api, busy, errorMessage, saveSession, showMessage, startPage, t } from "./app.js";

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

await startPage();
email.focus();
