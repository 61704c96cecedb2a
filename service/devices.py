"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies").

A browser that signed in to an account gets a cookie naming a random device id, bound to
the account's email and signed with a key derived from SECRET_KEY. A later sign-in that
carries it for the same email is limited per device, not by the failures of clients that
never signed in, so an attacker guessing passwords cannot keep the owner out."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from service.keys import keyed_digest

DEVICE_COOKIE = "support_pin_device"
DEVICE_COOKIE_MAX_AGE = 365 * 86_400
_ID_BYTES = 16
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceCookies:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, device_id: bytes, email: str) -> bytes:
        return keyed_digest(self._key, device_id.hex(), email)[:_MAC_BYTES]

    def issue(self, email: str, device_id: str | None = None) -> str:
        """A cookie value for `email` (normalized), keeping a device id the browser has."""
        raw = bytes.fromhex(device_id) if device_id else secrets.token_bytes(_ID_BYTES)
        return f"{_b64(raw)}.{_b64(self._mac(raw, email))}"

    def device_for(self, cookie: str | None, email: str) -> str | None:
        """The device id (hex) if `cookie` is one this service signed for `email`, else None."""
        if not cookie or len(cookie) > 64 or "." not in cookie:
            return None
        encoded_id, encoded_mac = cookie.split(".", 1)
        try:
            raw, mac = _unb64(encoded_id), _unb64(encoded_mac)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _ID_BYTES or _b64(raw) != encoded_id or _b64(mac) != encoded_mac:
            return None  # not the one spelling this service writes
        if not hmac.compare_digest(mac, self._mac(raw, email)):
            return None
        return raw.hex()
