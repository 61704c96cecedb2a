// The agent console: verify a caller's PIN against the email of the account being discussed.
import {
  api,
  ApiError,
  busy,
  errorMessage,
  formatTime,
  onLanguageChange,
  showMessage,
  startPage,
  t,
} from "./app.js";

// The agent's key lives in this tab's sessionStorage only: gone when the tab closes.
const KEY_STORAGE = "support-pin.agent-key";

const form = document.getElementById("verify-form");
const errorBox = document.getElementById("error");
const noticeBox = document.getElementById("notice");
const keyInput = document.getElementById("agent-key");
const emailInput = document.getElementById("caller-email");
const pinInput = document.getElementById("pin");
const resultBox = document.getElementById("result");
const resultAttempt = document.getElementById("result-attempt");
const resultTitle = document.getElementById("result-title");
const resultDetail = document.getElementById("result-detail");
const historyCard = document.getElementById("history-card");
const historyList = document.getElementById("history");

// Every check in this tab, oldest first: { email, valid, at (Date), verifiedAt (Date|null) }.
const checks = [];

function renderResult() {
  const last = checks.at(-1);
  resultBox.hidden = !last;
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

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  const email = emailInput.value.trim();
  const pin = pinInput.value.replace(/\s+/g, "");
  showMessage(noticeBox, "");
  if (!key) return showMessage(errorBox, t("form.key-required"));
  if (!email) return showMessage(errorBox, t("form.caller-email-required"));
  if (!/^[0-9]{6,10}$/.test(pin)) return showMessage(errorBox, t("form.pin-invalid"));
  showMessage(errorBox, "");
  // The previous answer goes the moment a new check starts, so it cannot be read as this one.
  resultBox.hidden = true;
  sessionStorage.setItem(KEY_STORAGE, key);
  await busy(form, async () => {
    try {
      const answer = await api("/v1/agent/verifications", {
        method: "POST",
        token: key,
        json: { email, pin },
      });
      checks.push({
        // The address as the service spells it (normalized), which is what was checked.
        email: typeof answer.email === "string" ? answer.email : email,
        valid: answer.valid === true,
        at: new Date(),
        verifiedAt: answer.verified_at ? new Date(answer.verified_at) : null,
      });
      pinInput.value = "";
      renderResult();
      renderHistory();
      resultBox.scrollIntoView({ block: "nearest" });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        sessionStorage.removeItem(KEY_STORAGE);
        showMessage(errorBox, t("error.agent_unauthenticated"));
        return;
      }
      showMessage(errorBox, errorMessage(error));
    }
  });
  // After the answer: ready for the next caller's PIN.
  pinInput.focus();
});

document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  keyInput.value = "";
  showMessage(errorBox, "");
  showMessage(noticeBox, t("agent.key-forgotten"));
  keyInput.focus();
});

onLanguageChange(() => {
  renderResult();
  renderHistory();
});

await startPage();
keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
(keyInput.value ? emailInput : keyInput).focus();
