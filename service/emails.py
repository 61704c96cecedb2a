"""Email addresses: the one spelling the service stores and compares, and the look-alike
checks of UTS #39 (Unicode Security Mechanisms).

Every entry normalizes with `normalize_email` (sign-up, sign-in, agent verification, and
later admin search and identity-provider claims), so an address typed as it was at sign-up
always finds its account, however the keyboard spelled it. Sign-up also refuses addresses
that mix scripts confusably (`mixes_confusable_scripts`) and stores `email_skeleton`, unique,
so a look-alike of an existing address is refused as if it were taken.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from importlib import resources

import idna
from confusable_homoglyphs import categories, confusables

# RFC 5321 §4.5.3.1.1, and its 256-octet path less the angle brackets (RFC 3696 erratum 1690).
LOCAL_PART_MAX_OCTETS = 64
ADDRESS_MAX_OCTETS = 254

# RFC 5322 `atext` (a dot-atom's characters besides the dots); RFC 6531 adds any non-ASCII.
_ATEXT_ASCII = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
# Non-ASCII characters an address cannot hold: controls, invisible format characters,
# surrogates, private use, unassigned code points, and spaces of every kind.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
# Default_Ignorable_Code_Point (Unicode 15.0, DerivedCoreProperties.txt): invisible, so an
# address with one looks like the address without it.
_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


class InvalidEmailAddress(ValueError):
    """Not an address the service accepts. The message says why; it never repeats the input."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a valid email address: {reason}")
        self.reason = reason


def normalize_email(raw: str) -> str:
    """The one spelling of an address that is stored and compared, or `InvalidEmailAddress`.

    Surrounding whitespace stripped; Unicode NFKC; split at the last '@'. The local part is
    case-folded (`str.casefold`, then NFKC again: folding can leave text NFKC changes) and
    must be a dot-atom (RFC 5322, with RFC 6531's non-ASCII characters; no quoted forms). The
    domain goes through IDNA (UTS #46 mapping, nontransitional, STD3 rules) and is kept in
    its canonical Unicode form (the U-labels of its punycode A-labels), so `xn--bcher-kva.de`
    and `BÜCHER.de` are both `bücher.de`. Idempotent: a normalized address normalizes to
    itself."""
    local, at, domain = unicodedata.normalize("NFKC", raw.strip()).rpartition("@")
    if not at:
        raise InvalidEmailAddress("it has no @")
    local = _normalize_local_part(local)
    ascii_domain, unicode_domain = _normalize_domain(domain)
    if len(local.encode()) + 1 + len(ascii_domain) > ADDRESS_MAX_OCTETS:
        raise InvalidEmailAddress(f"it is longer than {ADDRESS_MAX_OCTETS} bytes")
    return f"{local}@{unicode_domain}"


def _normalize_local_part(local: str) -> str:
    if not local:
        raise InvalidEmailAddress("the part before the @ is empty")
    folded = unicodedata.normalize("NFKC", local.casefold())
    if len(folded.encode()) > LOCAL_PART_MAX_OCTETS:
        raise InvalidEmailAddress(
            f"the part before the @ is longer than {LOCAL_PART_MAX_OCTETS} bytes"
        )
    if folded.startswith(".") or folded.endswith(".") or ".." in folded:
        raise InvalidEmailAddress(
            "the part before the @ cannot start or end with a dot or have two in a row"
        )
    for char in folded:
        if char == "." or char in _ATEXT_ASCII:
            continue
        if (
            char < "\x80"
            or unicodedata.category(char) in _REFUSED_CATEGORIES
            or _DEFAULT_IGNORABLE.match(char)
        ):
            raise InvalidEmailAddress(
                "the part before the @ has a character an address cannot hold "
                "(a space, quote, comma, bracket, control or invisible character)"
            )
    if unicodedata.category(folded[0]).startswith("M"):
        raise InvalidEmailAddress("the part before the @ starts with a combining mark")
    return folded


# Special-use top-level names (RFC 6761, RFC 7686, and arpa): no internet mail reaches them.
# The same list email-validator refuses, which sign-up used before.
_SPECIAL_USE_NAMES = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


# Remembered: the `idna` package takes tens of microseconds a domain, and most addresses share
# a few domains (a refusal raises again, uncached).
@functools.lru_cache(maxsize=4096)
def _normalize_domain(domain: str) -> tuple[str, str]:
    """The domain's A-label (punycode) form and its canonical U-label form."""
    if not domain:
        raise InvalidEmailAddress("the part after the @ is empty")
    try:
        encoded = idna.encode(domain, uts46=True, std3_rules=True, transitional=False)
        ascii_domain = encoded.decode("ascii")
        unicode_domain = idna.decode(ascii_domain)
    except UnicodeError as exc:  # idna.IDNAError is a UnicodeError
        raise InvalidEmailAddress("the part after the @ is not a valid domain name") from exc
    labels = ascii_domain.split(".")
    if not labels[-1]:
        raise InvalidEmailAddress("the domain ends with a dot")
    if len(labels) < 2:
        raise InvalidEmailAddress("the domain has a single name (mail needs a dot in it)")
    if labels[-1].isdigit():
        raise InvalidEmailAddress("the domain is a number, not a name")
    if labels[-1] in _SPECIAL_USE_NAMES:
        raise InvalidEmailAddress("the domain is a special-use name that receives no mail")
    return ascii_domain, unicode_domain


# UTS #39 §5.2 "Highly Restrictive": Latin may mix with these (Japanese, Chinese, Korean).
_HIGHLY_RESTRICTIVE = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Digits, punctuation and combining marks belong to no one script.
_NO_SCRIPT = frozenset({"COMMON", "INHERITED"})


def mixes_confusable_scripts(address: str) -> bool:
    """True when the local part, or a label of the domain, of a normalized address mixes
    scripts and a character of one of them looks like a character of another (UTS #39
    confusables), like a Cyrillic 'e' (U+0435) among Latin letters. The Highly Restrictive
    combinations (Latin with Han and kana, Bopomofo or Hangul) are allowed."""
    local, _, domain = address.rpartition("@")
    return _mixes_confusable_scripts(local) or any(
        _mixes_confusable_scripts(label) for label in domain.split(".")
    )


def _mixes_confusable_scripts(text: str) -> bool:
    if text.isascii():
        return False  # Latin and Common only
    scripts = {categories.alias(char) for char in text} - _NO_SCRIPT
    if len(scripts) < 2 or any(scripts <= allowed for allowed in _HIGHLY_RESTRICTIVE):
        return False
    for script in scripts:
        # Characters of other scripts that look like a character of `script`.
        found = confusables.is_confusable(text, greedy=True, preferred_aliases=[script]) or []
        if any(hit["alias"] in scripts and hit["alias"] != script for hit in found):
            return True
    return False


def _load_prototypes() -> dict[str, str]:
    """Unicode's confusables.txt (service/data/): each source character's prototype."""
    data = resources.files("service") / "data" / "confusables.txt"
    prototypes: dict[str, str] = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, prototype, _kind = line.split(";")
            prototypes[chr(int(source, 16))] = "".join(chr(int(c, 16)) for c in prototype.split())
    return prototypes


# Read once at import: a broken data file stops the service starting, not a sign-up.
_PROTOTYPES = _load_prototypes()


def skeleton(text: str) -> str:
    """The UTS #39 skeleton: NFD, default-ignorable code points removed, each character
    replaced by its prototype, NFD again. Two strings are confusable when theirs are equal."""
    decomposed = _DEFAULT_IGNORABLE.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", "".join(_PROTOTYPES.get(c, c) for c in decomposed))


def email_skeleton(address: str) -> str:
    """The skeleton of a normalized address, stored unique: a new address whose skeleton is
    an existing account's is a look-alike of it."""
    local, _, domain = address.rpartition("@")
    return f"{skeleton(local)}@{skeleton(domain)}"
