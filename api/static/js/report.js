// "This wasn't me": the link in a notice email (/report#token=rpt_…) locks support access to
// the account, after one press of a button that says what will happen.
import { api, ApiError, errorMessage, onLanguageChange, showMessage, startPage, t } from "./app.js";

const lockButton = document.getElementById("lock");
const doneBox = document.getElementById("done");
const errorBox = document.getElementById("error");
const askPart = document.getElementById("report-ask");

// The token is in the fragment, which browsers never send. Drop it from the address bar (and
// the history) at once; it stays in memory only.
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (window.location.hash) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}
const linkToken = fragment.get("token");

// Whether support access is now locked, and the error on show: a function giving its text
// (`retry`: whether pressing the button again may help), or null.
let done = false;
let error = null;

function render() {
  showMessage(doneBox, done ? t("report.done") : "");
  showMessage(errorBox, error ? error() : "");
  lockButton.hidden = done || !linkToken || Boolean(error && !error.retry);
  askPart.hidden = done;
}

function fail(text, { retry = false } = {}) {
  error = text;
  error.retry = retry;
  render();
}

lockButton.addEventListener("click", async () => {
  lockButton.disabled = true;
  error = null;
  render();
  try {
    await api("/v1/report", { method: "POST", json: { token: linkToken } });
    done = true;
    render();
    doneBox.focus();
  } catch (problem) {
    const invalid =
      problem instanceof ApiError && (problem.code === "invalid_token" || problem.status === 422);
    if (invalid) fail(() => t("report.invalid"));
    // Anything else (the network, the service busy): the same link can be tried again.
    else fail(() => errorMessage(problem), { retry: true });
  } finally {
    lockButton.disabled = false;
  }
});

onLanguageChange(render);

await startPage();
if (!linkToken) fail(() => t("report.no-token"));
else render();
