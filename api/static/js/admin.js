// Administration for support staff, with the staff session of the agent console (sign-in
// happens there): staff, API keys and account locks for admins; the audit log for
// supervisors and admins.
import {
  api,
  ApiError,
  busy,
  errorMessage,
  formatWhen,
  onLanguageChange,
  showMessage,
  startPage,
  t,
} from "./app.js";
import { clearStaffSession, roleName, staffToken } from "./staff-session.js";

const $ = (id) => document.getElementById(id);

const sections = {
  staff: $("staff-section"),
  keys: $("keys-section"),
  unlock: $("unlock-section"),
  audit: $("audit-section"),
};
const confirmDialog = $("confirm-dialog");

let token = staffToken();
let me = null;
let staff = [];
let keys = [];
// The audit search on show: its filters (without a cursor), its page number and answer.
let audit = null;
// Messages on show that follow a language switch: box → { text (a function), shown }.
const said = new Map();

function say(box, text) {
  if (!text) {
    said.delete(box);
    showMessage(box, "");
    return;
  }
  const entry = { text, shown: text() };
  said.set(box, entry);
  showMessage(box, entry.shown);
}

function resay() {
  for (const [box, entry] of said) {
    if (!box.hidden && box.textContent === entry.shown) say(box, entry.text);
  }
}

function when(value, empty = "admin.never") {
  return value ? formatWhen(new Date(value)) : t(empty);
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function button(label, ariaLabel, className, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = `btn ${className}`;
  element.textContent = label;
  if (ariaLabel) element.setAttribute("aria-label", ariaLabel);
  element.addEventListener("click", onClick);
  return element;
}

/** The page without a usable session: what to do, and a link to the agent console. */
function signedOut(messageKey, values = {}) {
  for (const section of Object.values(sections)) section.hidden = true;
  $("session-bar").hidden = true;
  $("signed-out").hidden = false;
  say($("signed-out-text"), () => t(messageKey, typeof values === "function" ? values() : values));
}

/** Calls the API as the signed-in staff member; an ended session shows the way back. */
async function call(path, options = {}) {
  try {
    return await api(path, { ...options, token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      clearStaffSession();
      token = null;
      signedOut("signin.session-ended");
    }
    throw error;
  }
}

/** Answers true when the person confirms `text` with the `okLabel` button. */
function confirmAction(text, okLabel) {
  const opener = document.activeElement;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  return new Promise((resolve) => {
    confirmDialog.addEventListener(
      "close",
      () => {
        if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
        resolve(confirmDialog.returnValue === "ok");
      },
      { once: true },
    );
  });
}

$("confirm-ok").addEventListener("click", () => confirmDialog.close("ok"));
$("confirm-cancel").addEventListener("click", () => confirmDialog.close("cancel"));

/** Copies the text of the element named by the button's data-copy; says how that went. */
async function copy(event) {
  const target = $(event.currentTarget.dataset.copy);
  const status = event.currentTarget.closest("section").querySelector("[role=status]");
  try {
    await navigator.clipboard.writeText(target.textContent);
    say(status, () => t("admin.copied"));
  } catch {
    // No clipboard here (permissions, an old browser): select it for a manual copy.
    window.getSelection().selectAllChildren(target);
    say(status, () => t("admin.copy-failed"));
  }
}

for (const element of document.querySelectorAll("button.copy")) {
  element.addEventListener("click", copy);
}

// -- staff ------------------------------------------------------------------------------

function renderStaff() {
  $("staff-rows").replaceChildren(
    ...staff.map((person) => {
      const row = document.createElement("tr");
      row.dataset.email = person.email;
      const roleCell = document.createElement("td");
      const select = document.createElement("select");
      select.className = "table-select";
      select.setAttribute("aria-label", t("admin.staff.role-of", { name: person.name }));
      for (const role of ["agent", "supervisor", "admin"]) {
        const option = document.createElement("option");
        option.value = role;
        option.textContent = roleName(t, role);
        select.append(option);
      }
      select.value = person.role;
      select.addEventListener("change", () => changeRole(person, select));
      roleCell.append(select);
      const actions = document.createElement("td");
      const label = person.disabled ? "admin.staff.enable" : "admin.staff.disable";
      actions.append(
        button(
          t(label),
          t(`${label}-of`, { name: person.name }),
          "btn-secondary btn-small",
          () => setDisabled(person, !person.disabled),
        ),
      );
      row.append(
        cell(person.name),
        cell(person.email, "nowrap"),
        roleCell,
        cell(t(`admin.staff.source.${person.source}`)),
        cell(t(person.disabled ? "admin.staff.disabled" : "admin.staff.active")),
        cell(when(person.last_sign_in_at)),
        actions,
      );
      return row;
    }),
  );
}

async function loadStaff() {
  try {
    staff = (await call("/v1/admin/staff")).staff;
    renderStaff();
  } catch (error) {
    if (token) say($("staff-error"), () => errorMessage(error));
  }
}

async function changeRole(person, select) {
  const role = select.value;
  say($("staff-status"), null);
  say($("staff-error"), null);
  const sure = await confirmAction(
    t("admin.staff.role-confirm", { name: person.name, role: roleName(t, role) }),
    t("admin.staff.change-role"),
  );
  if (!sure) {
    select.value = person.role;
    return;
  }
  try {
    const updated = await call(`/v1/admin/staff/${person.id}`, { method: "PATCH", json: { role } });
    say($("staff-status"), () =>
      t("admin.staff.role-changed", { name: updated.name, role: roleName(t, updated.role) }),
    );
    await loadStaff();
  } catch (error) {
    select.value = person.role;
    if (token) say($("staff-error"), () => errorMessage(error));
  }
}

async function setDisabled(person, disabled) {
  say($("staff-status"), null);
  say($("staff-error"), null);
  try {
    const updated = await call(`/v1/admin/staff/${person.id}`, {
      method: "PATCH",
      json: { disabled },
    });
    const key = updated.disabled ? "admin.staff.now-disabled" : "admin.staff.now-enabled";
    say($("staff-status"), () => t(key, { name: updated.name }));
    await loadStaff();
    // The row was drawn again: keep the keyboard where it was.
    $("staff-rows").querySelector(`tr[data-email="${CSS.escape(updated.email)}"] button`)?.focus();
  } catch (error) {
    if (token) say($("staff-error"), () => errorMessage(error));
  }
}

$("add-staff-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const email = $("new-staff-email").value.trim();
  const name = $("new-staff-name").value.trim();
  const role = $("new-staff-role").value;
  say($("staff-status"), null);
  $("setup-link-box").hidden = true;
  if (!email) return say($("staff-error"), () => t("form.email-required"));
  if (!name) return say($("staff-error"), () => t("error.validation_error"));
  say($("staff-error"), null);
  await busy(form, async () => {
    try {
      const added = await call("/v1/admin/staff", { method: "POST", json: { email, name, role } });
      $("setup-link").textContent = added.setup_url;
      say($("setup-link-text"), () => t("admin.staff.added", { email }));
      $("setup-link-box").hidden = false;
      form.reset();
      await loadStaff();
    } catch (error) {
      if (token) say($("staff-error"), () => errorMessage(error));
    }
  });
  if (!$("setup-link-box").hidden) $("setup-link-box").querySelector("button").focus();
});

// -- API keys ---------------------------------------------------------------------------

function keyState(key) {
  if (key.revoked) return "revoked";
  if (key.expires_at && Date.parse(key.expires_at) <= Date.now()) return "expired";
  return "active";
}

function renderKeys() {
  $("keys-empty").hidden = keys.length > 0;
  $("keys-rows").replaceChildren(
    ...keys.map((key) => {
      const row = document.createElement("tr");
      row.dataset.name = key.name;
      const state = keyState(key);
      row.dataset.state = state;
      const actions = document.createElement("td");
      if (!key.revoked) {
        actions.append(
          button(
            t("admin.keys.revoke"),
            t("admin.keys.revoke-of", { name: key.name }),
            "btn-secondary btn-small btn-danger",
            () => revokeKey(key),
          ),
        );
      }
      row.append(
        cell(key.name, "nowrap"),
        cell(when(key.created_at)),
        cell(when(key.expires_at, "admin.keys.no-expiry")),
        cell(when(key.last_used_at)),
        cell(t(`admin.keys.${state}`)),
        actions,
      );
      return row;
    }),
  );
}

async function loadKeys() {
  try {
    keys = (await call("/v1/admin/api-keys")).api_keys;
    renderKeys();
  } catch (error) {
    if (token) say($("keys-error"), () => errorMessage(error));
  }
}

async function revokeKey(key) {
  say($("keys-status"), null);
  say($("keys-error"), null);
  const sure = await confirmAction(
    t("admin.keys.revoke-confirm", { name: key.name }),
    t("admin.keys.revoke"),
  );
  if (!sure) return;
  try {
    await call(`/v1/admin/api-keys/${key.id}`, { method: "DELETE" });
    say($("keys-status"), () => t("admin.keys.now-revoked", { name: key.name }));
    await loadKeys();
    $("keys-heading").focus();
  } catch (error) {
    if (token) say($("keys-error"), () => errorMessage(error));
  }
}

$("create-key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const name = $("key-name").value.trim();
  const daysText = $("key-days").value.trim();
  say($("keys-status"), null);
  $("new-key-box").hidden = true;
  const days = daysText ? Number(daysText) : null;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
    return say($("keys-error"), () => t("admin.keys.name-hint"));
  }
  if (days !== null && !(Number.isInteger(days) && days >= 1 && days <= 3650)) {
    return say($("keys-error"), () => t("admin.keys.expiry-hint"));
  }
  say($("keys-error"), null);
  await busy(form, async () => {
    try {
      const created = await call("/v1/admin/api-keys", {
        method: "POST",
        json: days === null ? { name } : { name, expires_in_days: days },
      });
      $("new-key").textContent = created.key;
      say($("new-key-text"), () => t("admin.keys.created", { name: created.name }));
      $("new-key-box").hidden = false;
      form.reset();
      await loadKeys();
    } catch (error) {
      if (token) say($("keys-error"), () => errorMessage(error));
    }
  });
  if (!$("new-key-box").hidden) $("new-key-box").querySelector("button").focus();
});

// -- locks ------------------------------------------------------------------------------

$("unlock-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const email = $("unlock-email").value.trim();
  say($("unlock-status"), null);
  if (!email) return say($("unlock-error"), () => t("form.email-required"));
  say($("unlock-error"), null);
  await busy(form, async () => {
    try {
      await call("/v1/admin/accounts/unlock", { method: "POST", json: { email } });
      say($("unlock-status"), () => t("admin.unlock.done", { email }));
      form.reset();
    } catch (error) {
      if (token) say($("unlock-error"), () => errorMessage(error));
    }
  });
});

// -- the audit log ----------------------------------------------------------------------

/** The search's filters from the form; throws a message key when a time is not one. */
function auditFilters() {
  const filters = new URLSearchParams();
  const text = {
    email: $("audit-email").value.trim(),
    actor: $("audit-actor").value.trim(),
    type: $("audit-type").value,
    case_ref: $("audit-case").value.trim(),
  };
  for (const [name, value] of Object.entries(text)) if (value) filters.set(name, value);
  for (const [name, id] of [
    ["since", "audit-since"],
    ["until", "audit-until"],
  ]) {
    const value = $(id).value;
    if (!value) continue;
    // This device's local time, sent as UTC.
    const moment = new Date(value);
    if (Number.isNaN(moment.getTime())) throw "error.validation_error";
    filters.set(name, moment.toISOString());
  }
  return filters;
}

function renderAudit() {
  if (!audit) return;
  $("audit-results").hidden = false;
  $("audit-page").textContent = t("admin.audit.page", { n: audit.page });
  $("audit-empty").hidden = audit.events.length > 0;
  $("audit-next").hidden = !audit.nextCursor;
  $("audit-rows").replaceChildren(
    ...audit.events.map((event) => {
      const row = document.createElement("tr");
      row.dataset.type = event.type;
      const time = document.createElement("time");
      time.dateTime = event.at;
      time.textContent = formatWhen(new Date(event.at));
      const at = cell("", "nowrap");
      at.append(time);
      row.append(
        at,
        cell(event.type, "nowrap"),
        cell(event.account_email),
        cell(event.actor),
        cell(event.case_ref),
        cell(event.reason),
        cell(event.target),
      );
      return row;
    }),
  );
}

async function searchAudit(filters, cursor, page) {
  const query = new URLSearchParams(filters);
  if (cursor) query.set("cursor", cursor);
  const answer = await call(`/v1/admin/audit?${query}`);
  audit = { filters, page, events: answer.events, nextCursor: answer.next_cursor };
  renderAudit();
}

$("audit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  let filters;
  try {
    filters = auditFilters();
  } catch (key) {
    return say($("audit-error"), () => t(key));
  }
  say($("audit-error"), null);
  await busy(event.currentTarget, async () => {
    try {
      await searchAudit(filters, null, 1);
    } catch (error) {
      if (token) say($("audit-error"), () => errorMessage(error));
    }
  });
});

$("audit-next").addEventListener("click", async (event) => {
  if (!audit?.nextCursor) return;
  const next = event.currentTarget;
  next.disabled = true;
  say($("audit-error"), null);
  try {
    await searchAudit(audit.filters, audit.nextCursor, audit.page + 1);
    $("audit-page").focus();
  } catch (error) {
    if (token) say($("audit-error"), () => errorMessage(error));
  } finally {
    next.disabled = false;
  }
});

/** Every matching row as CSV (the service pages through them), saved as a file. */
async function downloadCsv(filters) {
  let response;
  try {
    response = await fetch(`/v1/admin/audit?${filters}`, {
      headers: { accept: "text/csv", authorization: `Bearer ${token}` },
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", null, null);
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => null);
    const error = new ApiError(response.status, problem?.code ?? `http_${response.status}`, null, problem);
    if (response.status === 401) {
      clearStaffSession();
      token = null;
      signedOut("signin.session-ended");
    }
    throw error;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = `audit-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

$("audit-csv").addEventListener("click", async () => {
  let filters;
  try {
    filters = auditFilters();
  } catch (key) {
    return say($("audit-error"), () => t(key));
  }
  say($("audit-error"), null);
  await busy($("audit-form"), async () => {
    try {
      await downloadCsv(filters);
    } catch (error) {
      if (token) say($("audit-error"), () => errorMessage(error));
    }
  });
});

// -- start ------------------------------------------------------------------------------

function renderWho() {
  if (me) $("staff-who").textContent = t("agent.signed-in-as", { name: me.name, role: roleName(t, me.role) });
}

onLanguageChange(() => {
  renderWho();
  renderStaff();
  renderKeys();
  renderAudit();
  resay();
});

await startPage();
if (!token) {
  signedOut("admin.signed-out");
} else {
  try {
    me = await call("/v1/staff/me");
  } catch (error) {
    if (token) say($("error"), () => errorMessage(error));
  }
  if (me) {
    renderWho();
    $("session-bar").hidden = false;
    if (me.role === "admin") {
      sections.staff.hidden = false;
      sections.keys.hidden = false;
      sections.unlock.hidden = false;
      sections.audit.hidden = false;
      await Promise.all([loadStaff(), loadKeys()]);
    } else if (me.role === "supervisor") {
      sections.audit.hidden = false;
    } else {
      signedOut("admin.no-role", () => ({ role: roleName(t, me.role) }));
      $("session-bar").hidden = false;
    }
    if (!sections.audit.hidden) {
      try {
        await searchAudit(new URLSearchParams(), null, 1);
      } catch (error) {
        if (token) say($("audit-error"), () => errorMessage(error));
      }
    }
  }
}
