"""A Prefect flow whose plain JSON parameters are recorded as they are.

Prefect's `Flow.serialize_parameters` runs every parameter through FastAPI's
`jsonable_encoder`, and importing FastAPI for it costs 0.2-0.25 s of each run here: a tenth of
a nightly run that finds nothing changed. `curate`'s parameters (strings, booleans and the
config as a dict read from YAML or JSON) are JSON already, so they need no encoding; anything
else (a date from YAML, a dataclass) still goes through Prefect's encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Flow


def is_plain_json(value: Any) -> bool:
    """True for str, int, float, bool, None, and lists and str-keyed dicts of them."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(is_plain_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain_json(v) for k, v in value.items())
    return False


class PlainParamsFlow(Flow):
    """A Flow that skips FastAPI's encoder when every parameter is plain JSON."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if all(is_plain_json(v) for v in parameters.values()):
            return dict(parameters)
        return super().serialize_parameters(parameters)


def plain_flow(**options: Any) -> Callable[[Callable[..., Any]], PlainParamsFlow]:
    """Like `@flow(**options)`, making a PlainParamsFlow."""

    def wrap(fn: Callable[..., Any]) -> PlainParamsFlow:
        return PlainParamsFlow(fn=fn, **options)

    return wrap
