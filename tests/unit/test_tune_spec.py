"""The tune: section is checked before Ray starts, one dotted line per problem."""

from pathlib import Path

import pytest
import yaml

from raydl.errors import SpecError
from raydl.spec import validate_spec
from raydl.tune.search import param_space, trial_spec


def _raw(repo_root, **tune):
    raw = yaml.safe_load(Path(f"{repo_root}/jobs/digits_tune.yaml").read_text())
    raw["tune"].update(tune)
    return raw


def test_example_is_valid_and_trials_set_dotted_paths(repo_root):
    spec = validate_spec(_raw(repo_root))
    assert set(param_space(spec.tune)) == {
        "train.optimizer.lr",
        "model.params.dropout",
        "model.params.hidden",
    }
    trial = trial_spec(spec.model_dump(mode="json"), {"train.optimizer.lr": 0.01, "model.params.hidden": 32})
    assert trial.train.optimizer.lr == 0.01 and trial.model.params["hidden"] == 32 and trial.tune is None


def test_bad_space_is_one_line_per_problem(repo_root):
    raw = _raw(
        repo_root,
        metric="val_f1",
        space={
            "train.optimizer.lr": {"loguniform": [0, 1]},
            "model.params.width": {"choice": [8, 16]},
            "model.params.dropout": {"uniform": [0.1], "choice": [1]},
            "train.epochs": {"grid": [1, 2]},
            "seed": {"normal": [0, 1]},
        },
    )
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    lines = e.value.lines()
    assert any(line.startswith("tune.metric: 'val_f1' is not reported") for line in lines)
    assert any(line.startswith("tune.space.train.optimizer.lr.loguniform: expected") for line in lines)
    assert any(line.startswith("tune.space.model.params.width: a trial with") for line in lines)
    assert any(line.startswith("tune.space.model.params.dropout: give exactly one") for line in lines)
    assert any(line.startswith("tune.space.train.epochs.grid: grid values need") for line in lines)
    assert any(line.startswith("tune.space.seed: unknown space 'normal'") for line in lines)


def test_pbt_needs_one_worker_trials_and_no_bayesian_search(repo_root):
    raw = _raw(repo_root, scheduler={"type": "pbt"})
    raw["train"]["workers"] = 2
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    lines = e.value.lines()
    assert any(line.startswith("tune.scheduler: pbt needs one-worker trials") for line in lines), lines
    assert any(line.startswith("tune.search: pbt samples and mutates") for line in lines), lines


def test_cv_in_search_needs_one_worker_trials_and_no_early_stopping_scheduler(repo_root):
    raw = _raw(repo_root, cv=3)  # digits_tune.yaml uses ASHA
    raw["train"]["workers"] = 2
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    lines = e.value.lines()
    assert any(line.startswith("tune.cv: cross-validated trials run their folds") for line in lines), lines
    assert any(line.startswith("tune.cv: a trial's score is known once") for line in lines), lines
    ok = _raw(repo_root, cv=3, scheduler=None)
    assert validate_spec(ok).tune.cv == 3


def test_string_choices_validate_and_a_data_space_is_refused(repo_root):
    ok = _raw(repo_root, space={"train.optimizer.type": {"choice": ["adam", "sgd"]}})
    assert validate_spec(ok).tune.space["train.optimizer.type"] == {"choice": ["adam", "sgd"]}
    with pytest.raises(SpecError, match="train.optimizer.type='sgdd' is not a valid spec"):
        validate_spec(_raw(repo_root, space={"train.optimizer.type": {"choice": ["adam", "sgdd"]}}))
    augment = {"data.augment": {"choice": [[], [{"type": "hflip"}]]}}
    assert validate_spec(_raw(repo_root, space=augment))  # runs in the training loop: per trial
    with pytest.raises(SpecError) as e:
        validate_spec(_raw(repo_root, space={"data.balance": {"choice": ["none", "oversample"]}}))
    (line,) = e.value.lines()
    assert line.startswith("tune.space.data.balance: the search prepares the data once for all its trials")


def test_max_failures_is_a_small_non_negative_count(repo_root):
    assert validate_spec(_raw(repo_root)).tune.max_failures == 0  # default: no retries, search goes on
    assert validate_spec(_raw(repo_root, max_failures=2)).tune.max_failures == 2
    for bad in (-1, 11, "often"):
        with pytest.raises(SpecError) as e:
            validate_spec(_raw(repo_root, max_failures=bad))
        assert "tune.max_failures" in str(e.value), str(e.value)
