"""atheris targets (run by tests/test_fuzz.py in a child process, bounded by -runs).

Config text in any of the three formats, then validation: the only exception allowed out is
a one-line UserError. Journal lines: never an exception, and what comes out is well typed.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from photo_curate.config import config_from_mapping, parse_mapping
    from photo_curate.errors import UserError
    from photo_curate.journal import parse_line

SUFFIXES = (".yaml", ".toml", ".json")


def config_target(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    suffix = SUFFIXES[fdp.ConsumeIntInRange(0, 2)]
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    try:
        config_from_mapping(parse_mapping(text, suffix))
    except UserError as exc:
        msg = str(exc)
        if "\n" in msg or "\r" in msg or len(msg) > 400:
            raise AssertionError(f"not a one-line message: {msg!r}") from None


def journal_target(data: bytes) -> None:
    entry = parse_line(data)
    if entry is not None:
        assert isinstance(entry.path, str) and isinstance(entry.op_id, str)


def main() -> None:
    target = {"config": config_target, "journal": journal_target}[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
