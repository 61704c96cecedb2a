// Passkeys (WebAuthn): the API speaks JSON with base64url strings, the browser wants
// ArrayBuffers; these convert both ways.

/** Whether this page can use passkeys: a secure context, the API, and a domain name (an IP
 * address cannot be a relying party id). */
export function passkeysPossible() {
  const host = window.location.hostname;
  const ipAddress = /^[\d.]+$/.test(host) || host.includes(":") || host.startsWith("[");
  return (
    window.isSecureContext &&
    typeof window.PublicKeyCredential === "function" &&
    typeof navigator.credentials?.create === "function" &&
    !ipAddress
  );
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes.buffer;
}

function toBase64url(buffer) {
  if (buffer === null || buffer === undefined) return null;
  const bytes = new Uint8Array(buffer instanceof ArrayBuffer ? buffer : buffer.buffer);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function descriptors(list) {
  return (list ?? []).map((item) => ({ ...item, id: fromBase64url(item.id) }));
}

/** navigator.credentials.create()'s publicKey from POST /v1/me/passkeys/options. */
export function creationOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

/** navigator.credentials.get()'s publicKey from POST /v1/auth/passkey/options. */
export function requestOptions(json) {
  const options = { ...json, challenge: fromBase64url(json.challenge) };
  if (json.allowCredentials) options.allowCredentials = descriptors(json.allowCredentials);
  return options;
}

/** A PublicKeyCredential as JSON (WebAuthn Level 3's toJSON(), or the same built by hand). */
export function credentialJson(credential) {
  if (typeof credential.toJSON === "function") {
    try {
      return credential.toJSON();
    } catch {
      // Built below instead.
    }
  }
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults?.() ?? {},
  };
  if (credential.authenticatorAttachment) {
    json.authenticatorAttachment = credential.authenticatorAttachment;
  }
  if ("attestationObject" in response) {
    json.response = {
      clientDataJSON: toBase64url(response.clientDataJSON),
      attestationObject: toBase64url(response.attestationObject),
      transports: response.getTransports?.() ?? [],
    };
  } else {
    json.response = {
      clientDataJSON: toBase64url(response.clientDataJSON),
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      userHandle: toBase64url(response.userHandle),
    };
  }
  return json;
}

/** The message key for a browser's refusal (the person cancelled, or the device said no). */
export function passkeyFailure(error) {
  if (error?.name === "InvalidStateError") return "passkey.error.exists";
  if (error?.name === "NotAllowedError" || error?.name === "AbortError") {
    return "passkey.error.cancelled";
  }
  return "passkey.error.unsupported";
}
