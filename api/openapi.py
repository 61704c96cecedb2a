"""Write or check `openapi.yaml`: `python -m api.openapi [--check]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from service.settings import Settings

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


class _SpecDumper(yaml.SafeDumper):
    """Multi-line strings (descriptions) as readable literal blocks."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _str_presenter)


def generate() -> str:
    from api.app import create_app

    # The spec does not depend on the stores; the app is built but never started.
    app = create_app(Settings(database_url="postgresql://unused", redis_url="redis://unused"))
    spec: dict[str, Any] = app.openapi()
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if openapi.yaml is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if not SPEC_PATH.exists() or SPEC_PATH.read_text(encoding="utf-8") != text:
            print("openapi.yaml is stale: run `python -m api.openapi`", file=sys.stderr)
            return 1
        return 0
    SPEC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SPEC_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
