// "Forgot password?": ask for a reset link by email. The answer is the same whether or not an
// account has the address, so the page says so either way.
import {
  api,
  busy,
  clearFieldErrors,
  errorMessage,
  onLanguageChange,
  setFieldError,
  showFieldProblems,
  showMessage,
  startPage,
  t,
} from "./app.js";

const form = document.getElementById("reset-form");
const email = document.getElementById("email");
const sent = document.getElementById("sent");
const errorBox = document.getElementById("error");

// The message on show, redrawn on a language switch: { box, text (a function) } or null.
let shown = null;

function say(box, text) {
  showMessage(sent, "");
  showMessage(errorBox, "");
  shown = text ? { box, text } : null;
  if (shown) showMessage(box, text());
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(null, null);
  clearFieldErrors(form);
  const address = email.value.trim();
  if (!address) setFieldError(email, () => t("form.email-required"));
  else if (!/^[^@\s]+@[^@\s]+$/.test(address)) setFieldError(email, () => t("form.email-invalid"));
  if (email.getAttribute("aria-invalid") === "true") {
    email.focus();
    return;
  }
  let failed = null;
  await busy(form, async () => {
    try {
      await api("/v1/auth/password-reset", { method: "POST", json: { email: address } });
    } catch (error) {
      failed = error;
    }
  });
  if (!failed) {
    say(sent, () => t("reset.sent", { email: address }));
    return;
  }
  const field = showFieldProblems(failed, { email });
  if (field) field.focus();
  else say(errorBox, () => errorMessage(failed));
});

onLanguageChange(() => {
  if (shown) showMessage(shown.box, shown.text());
});

await startPage();
email.focus();
