"""PlainParamsFlow records plain JSON parameters as Prefect would, without importing FastAPI."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

from prefect import Flow

from flows.curate import curate
from photo_curate.plain_flow import PlainParamsFlow, is_plain_json

CLI_PARAMS = {
    "source": "/photos/Ünïcode folder",
    "home": None,
    "config": {"rules": {"dark": {"max_mean": 20.5}}, "actions": {"protected": ["a/*.jpg"]}},
    "apply": False,
    "action": None,
    "full": True,
}


def test_is_plain_json() -> None:
    assert is_plain_json(CLI_PARAMS)
    assert not is_plain_json({"when": date(2024, 1, 1)})
    assert not is_plain_json({1: "int key"})
    assert not is_plain_json(("a", "tuple"))


def test_the_curate_flow_is_one() -> None:
    assert isinstance(curate, PlainParamsFlow)


def test_same_record_as_prefects_encoder() -> None:
    plain = Flow.serialize_parameters(curate, CLI_PARAMS)
    assert curate.serialize_parameters(CLI_PARAMS) == plain == CLI_PARAMS
    odd = {**CLI_PARAMS, "config": {"since": date(2024, 1, 1)}}  # YAML reads dates
    assert curate.serialize_parameters(odd) == Flow.serialize_parameters(curate, odd)
    assert curate.serialize_parameters(odd)["config"] == {"since": "2024-01-01"}


def test_plain_parameters_do_not_import_fastapi() -> None:
    code = (
        "import sys; from flows.curate import curate; "
        f"curate.serialize_parameters({CLI_PARAMS!r}); print('fastapi' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
