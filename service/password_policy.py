"""Which new passwords to refuse (NIST SP 800-63B-4 §3.1.1.2): commonly used or breached
ones, repetitive or sequential strings, and context words (the email's local part, the
service's name). Pure and fast: the blocklist is read once, when this module is imported.

Sign-up calls `check_new_password`; password change and reset should call it too, with the
account's email. The minimum length (12) is the request schema's rule, checked before this.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from importlib import resources
from itertools import pairwise
from typing import Final, Literal

from service.errors import PasswordRefused

PasswordReason = Literal[
    "repetitive", "sequential", "contains_email", "contains_service_name", "common"
]

BLOCKLIST_RESOURCE = "data/common-passwords.txt.gz"  # source and licence: data/README.md

# Characters a password may have around a common one ("password1234", "!!dragon2024").
_PADDING = " 0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_SHORTEST_PADDED_CORE = 4  # shorter cores ("x" in "x8305716294") say little
# Characters a repetitive or sequential password may have besides its pattern.
_STRAY_CHARACTERS = 2
_SERVICE_NAME = re.compile(r"support[\s._-]*pin")
_SHORTEST_LOCAL_PART = 3
_SHORTEST_RUN = 3

# Runs of consecutive characters: the alphabet and the digits wrap around ("xyzab",
# "8901"); keyboard rows run on into the next row ("qwertyuiopas"). Either direction.
_WRAPPING_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "0123456789")
_KEYBOARD_SEQUENCES = (
    "qwertyuiopasdfghjklzxcvbnm",  # QWERTY rows
    "qwertzuiopasdfghjklyxcvbnm",  # QWERTZ rows
    "azertyuiopqsdfghjklmwxcvbn",  # AZERTY rows
    "1234567890-=",
    "!@#$%^&*()_+",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/",  # QWERTY columns
    "qazwsxedcrfvtgbyhnujmikolp",
)


def _links() -> dict[str, tuple[int, ...]]:
    """Two characters -> the sequences (numbered, each direction its own) that step from the
    first to the second."""
    steps: dict[str, list[int]] = {}
    sequences = [(sequence, True) for sequence in _WRAPPING_SEQUENCES]
    sequences += [(sequence, False) for sequence in _KEYBOARD_SEQUENCES]
    for number, (sequence, wraps) in enumerate(sequences):
        following = sequence[1:] + (sequence[0] if wraps else "")
        for a, b in zip(sequence, following, strict=False):
            steps.setdefault(a + b, []).append(2 * number)
            steps.setdefault(b + a, []).append(2 * number + 1)
    return {pair: tuple(numbers) for pair, numbers in steps.items()}


_LINKS: Final = _links()


def normalize_password(password: str) -> str:
    """The form passwords are compared in: NFKC, lower case."""
    return unicodedata.normalize("NFKC", password).lower()


def _load_blocklist() -> frozenset[str]:
    data = resources.files("service").joinpath(BLOCKLIST_RESOURCE).read_bytes()
    return frozenset(gzip.decompress(data).decode("utf-8").split("\n")) - {""}


COMMON_PASSWORDS: Final[frozenset[str]] = _load_blocklist()


def _is_common(password: str) -> bool:
    if password in COMMON_PASSWORDS:
        return True
    core = password.strip(_PADDING)
    return len(core) >= _SHORTEST_PADDED_CORE and core != password and core in COMMON_PASSWORDS


def _is_repetitive(password: str) -> bool:
    """A few characters only, runs of one character, or a short unit repeated: judged on the
    whole password, give or take two stray characters at its ends."""
    length = len(password)
    if len(set(password)) <= 3:
        return True
    collapsed = sum(1 for a, b in pairwise(password) if a != b) + 1  # "aaabbbccc" -> 3
    if 3 * collapsed <= length:
        return True
    for head in range(_STRAY_CHARACTERS + 1):
        for tail in range(_STRAY_CHARACTERS + 1 - head):
            window = password[head : length - tail]
            # Period k: the window is its first k characters repeated (at least twice).
            if any(
                window[k] == window[0] and window[k:] == window[:-k]
                for k in range(1, len(window) // 2 + 1)
            ):
                return True
    return False


def _runs(password: str) -> list[tuple[int, int]]:
    """Maximal runs (start, end) of at least three consecutive characters, in any sequence."""
    runs = []
    started: dict[int, int] = {}  # sequence -> where its current run started
    for i in range(1, len(password) + 1):
        linked = _LINKS.get(password[i - 1 : i + 1], ())
        for sequence, start in list(started.items()):
            if sequence not in linked:
                del started[sequence]
                if i - start >= _SHORTEST_RUN:
                    runs.append((start, i))
        for sequence in linked:
            started.setdefault(sequence, i - 1)
    return runs


def _is_sequential(password: str) -> bool:
    """Runs of consecutive characters ("abcdefghijkl", "qwerty123456") make up all of the
    password but for two characters at most (a passphrase's spaces alone are more)."""
    covered: set[int] = set()
    for start, end in _runs(password):
        covered.update(range(start, end))
    return len(password) - len(covered) <= _STRAY_CHARACTERS


def _contains_email(password: str, email: str) -> bool:
    local_part = normalize_password(email.strip().rpartition("@")[0])
    untagged = local_part.partition("+")[0]  # "ada+shop" -> "ada"
    return any(
        len(word) >= _SHORTEST_LOCAL_PART and word in password for word in (local_part, untagged)
    )


def password_problem(password: str, *, email: str) -> PasswordReason | None:
    """Why a new password for the account with `email` is refused, or None to accept it.
    Shape problems come first: "aaaaaaaaaaaa" is called repetitive, though it is common too."""
    normalized = normalize_password(password)
    if _is_repetitive(normalized):
        return "repetitive"
    if _is_sequential(normalized):
        return "sequential"
    if _contains_email(normalized, email):
        return "contains_email"
    if _SERVICE_NAME.search(normalized):
        return "contains_service_name"
    if _is_common(normalized):
        return "common"
    return None


def check_new_password(password: str, *, email: str, field: str = "password") -> None:
    """Raise `PasswordRefused` (422, naming the reason and the request's `field`) for a
    password `password_problem` refuses."""
    reason = password_problem(password, email=email)
    if reason is not None:
        raise PasswordRefused(reason, field=field)
