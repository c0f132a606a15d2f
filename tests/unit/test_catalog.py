"""The catalog names every member of every family without importing it; the modules
that implement the members register exactly those names, with the same facts."""

import inspect
import typing

import pytest

from raydl import catalog
from raydl.spec import AugmentStep, Source, TrainSpec, TuneSchedulerSpec, TuneSpec
from raydl.spec.model_params import ARCH_PARAMS

FAMILIES = [
    catalog.MODELS,
    catalog.SOURCES,
    catalog.BUILTINS,
    catalog.AUGMENTS,
    catalog.OPTIMIZERS,
    catalog.SCHEDULERS,
    catalog.LOSSES,
    catalog.STRATEGIES,
    catalog.METRICS,
    catalog.SPACES,
    catalog.SEARCHERS,
    catalog.TRIAL_SCHEDULERS,
]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.family)
def test_every_declared_member_is_registered_by_its_module(family):
    for name in family.names():
        assert family.get(name) is not None


def test_builtin_facts_match_the_datasets():
    for name in catalog.BUILTINS.names():
        info, builtin = catalog.BUILTINS.info(name), catalog.BUILTINS.get(name)()
        assert (info.label, info.task) == (builtin.label, builtin.task), name
    assert catalog.TEXT_BUILTINS == ("bbc_news",)


def _literals(annotation) -> set[str]:
    args = typing.get_args(annotation)
    return {a for a in args if isinstance(a, str)} | {v for a in args for v in _literals(a)}


def test_the_spec_offers_exactly_the_catalogs_names():
    assert _literals(TrainSpec.model_fields["strategy"].annotation) == set(catalog.STRATEGIES.names())
    assert _literals(TuneSpec.model_fields["search"].annotation) == set(catalog.SEARCHERS.names())
    assert _literals(TuneSchedulerSpec.model_fields["type"].annotation) == set(
        catalog.TRIAL_SCHEDULERS.names()
    )
    steps = typing.get_args(typing.get_args(AugmentStep)[0])
    assert {s.model_fields["type"].annotation.__args__[0] for s in steps} == set(catalog.AUGMENTS.names())
    sources = typing.get_args(typing.get_args(Source)[0])
    assert set().union(*(_literals(s.model_fields["type"].annotation) for s in sources)) == set(
        catalog.SOURCES.names()
    )
    assert set(ARCH_PARAMS) == set(catalog.MODELS.names())


@pytest.mark.parametrize("arch", sorted(ARCH_PARAMS))
def test_params_class_mirrors_the_builders_signature(arch):
    """Same names, same order, same defaults: the schema tells the truth about the builder."""
    sig = inspect.signature(catalog.MODELS.get(arch)).parameters
    builder = {n: p.default for n, p in sig.items() if n not in ("input_shape", "num_outputs")}
    fields = ARCH_PARAMS[arch].model_fields
    assert list(fields) == list(builder)
    for name, default in builder.items():
        want = None if default is inspect.Parameter.empty else default
        want = list(want) if isinstance(want, tuple) else want
        assert fields[name].get_default(call_default_factory=True) == want, f"{arch}.{name}"
