// The page of a reset email's link (/reset/confirm#token=prt_…): a new password, then on to
// sign-in with it. The token rides in the fragment (never sent to a server); it leaves the
// address bar and the history at once and stays in memory only.
import {
  api,
  ApiError,
  busy,
  clearFieldErrors,
  errorMessage,
  onLanguageChange,
  setFieldError,
  setNotice,
  showFieldProblems,
  showMessage,
  startPage,
  t,
} from "./app.js";

const form = document.getElementById("confirm-form");
const newPassword = document.getElementById("new-password");
const errorBox = document.getElementById("error");
const newLink = document.getElementById("new-link");

const fragment = new URLSearchParams(window.location.hash.slice(1));
if (window.location.hash) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}
const resetToken = fragment.get("token");

// The error on show, redrawn on a language switch (a function giving it), or null.
let shownError = null;

function showError(text) {
  shownError = text;
  showMessage(errorBox, text ? text() : "");
}

/** The link does not work (any more): say so, and offer a new one. */
function deadLink(key) {
  form.hidden = true;
  newLink.hidden = false;
  showError(() => t(key));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  clearFieldErrors(form);
  if (newPassword.value.length < 12) {
    setFieldError(newPassword, () => t("form.new-password-short"));
    newPassword.focus();
    return;
  }
  let failed = null;
  await busy(form, async () => {
    try {
      await api("/v1/auth/password-reset/confirm", {
        method: "POST",
        json: { token: resetToken, new_password: newPassword.value },
      });
    } catch (error) {
      failed = error;
    }
  });
  if (!failed) {
    setNotice("signin.password-reset");
    window.location.replace("/");
    return;
  }
  if (failed instanceof ApiError && failed.code === "invalid_token") {
    deadLink("reset.confirm.invalid");
    return;
  }
  // A refused new password names `password` (the rule is the sign-up's); the link still works.
  const field = showFieldProblems(failed, { new_password: newPassword, password: newPassword });
  if (field) {
    field.focus();
    field.select();
  } else {
    showError(() => errorMessage(failed));
  }
});

onLanguageChange(() => {
  if (shownError) showError(shownError);
});

const usable = typeof resetToken === "string" && /^prt_[A-Za-z0-9_-]{8,96}$/.test(resetToken);
await startPage();
if (usable) {
  form.hidden = false;
  newPassword.focus();
} else {
  deadLink("reset.confirm.no-token");
}
