"""The search space: the spec's ``tune.space`` as Ray Tune's ``param_space``, and the
spec of one trial. Pure: builds values, starts nothing.

The space's keys are dotted spec paths, set on each trial's copy of the spec as
``raydl run`` overrides are. Each kind (``uniform``, ``choice``, …) is a member of
:data:`raydl.catalog.SPACES`, which also says how its arguments are written (the checks
in :func:`raydl.checks.check_space` use that, before Ray starts).
"""

from __future__ import annotations

import json
from typing import Any

from raydl.catalog import SPACES
from raydl.checks import apply_overrides
from raydl.spec import JobSpec, TuneSpec


@SPACES.register("uniform")
def _uniform(args: list[Any]) -> Any:
    from ray import tune

    return tune.uniform(*args)


@SPACES.register("loguniform")
def _loguniform(args: list[Any]) -> Any:
    from ray import tune

    return tune.loguniform(*args)


@SPACES.register("randint")
def _randint(args: list[Any]) -> Any:
    from ray import tune

    return tune.randint(*args)


@SPACES.register("choice")
def _choice(args: list[Any]) -> Any:
    from ray import tune

    return tune.choice(list(args))


@SPACES.register("grid")
def _grid(args: list[Any]) -> Any:
    from ray import tune

    return tune.grid_search(list(args))


def param_space(t: TuneSpec) -> dict[str, Any]:
    """``tune.space`` as Tune samplers, by dotted path; with ``search: grid`` a choice
    is a grid axis."""
    space = {}
    for path, entry in t.space.items():
        ((kind, args),) = entry.items()
        if t.search == "grid" and kind == "choice":
            kind = "grid"
        space[path] = SPACES.get(kind)(args)
    return space


def search_metric(t: TuneSpec) -> str:
    """What picks the best trial: ``metric``, or its k-fold mean with ``tune.cv``."""
    return f"cv_{t.metric}" if t.cv else t.metric


def trial_spec(base: dict[str, Any], config: dict[str, Any]) -> JobSpec:
    """The spec of one trial: the base spec with each sampled dotted path set."""
    raw = json.loads(json.dumps(base))
    raw["tune"] = None
    raw = apply_overrides(raw, [f"{path}={json.dumps(value)}" for path, value in config.items()])
    return JobSpec.model_validate(raw)
