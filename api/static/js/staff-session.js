// The support staff's session, shared by the agent console and the admin page. Kept in this
// tab's sessionStorage under its own key (apart from a customer's session): gone when the tab
// closes; never persisted.

const STAFF_SESSION_KEY = "support-pin.staff-session";

export function saveStaffSession(tokenAnswer) {
  const expiresAt = Date.now() + tokenAnswer.expires_in * 1000;
  sessionStorage.setItem(
    STAFF_SESSION_KEY,
    JSON.stringify({ token: tokenAnswer.access_token, expiresAt }),
  );
}

/** The staff session token, or null when there is none or it has run out. */
export function staffToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STAFF_SESSION_KEY) || "null");
    if (saved && typeof saved.token === "string" && saved.expiresAt > Date.now()) return saved.token;
  } catch {
    // A damaged entry is the same as none.
  }
  sessionStorage.removeItem(STAFF_SESSION_KEY);
  return null;
}

export function clearStaffSession() {
  sessionStorage.removeItem(STAFF_SESSION_KEY);
}

/** "agent", "supervisor" or "admin" in the page's language (via `t`). */
export function roleName(t, role) {
  return ["agent", "supervisor", "admin"].includes(role) ? t(`role.${role}`) : role;
}
