"""The Predictor: rows as the user's data holds them → predictions, without Ray.

One path from a raw row to an answer, used by evaluation (``predictions.npz``), batch
inference (``raydl predict``), compression and serving::

    raw rows ─ Preprocessor (fitted on train) ─▶ x ─ backend (torch | int8 | ONNX) ─▶ outputs ─▶ answers

``preprocess`` → ``forward`` → ``postprocess`` are public so that a server can batch
requests, or run another backend behind the same pre- and post-processing.

>>> p = Predictor.from_run("runs/digits-cnn-20261128-004400")
>>> p.predict({"x": pixels})  # {"label": 3, "probability": 0.98, "probabilities": {...}, "top_k": [...]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from raydl.backends import Backend, TorchBackend, load_backend
from raydl.data import rows
from raydl.data.preprocess import Preprocessor
from raydl.errors import RaydlError, RequestError, RowProblem
from raydl.registry import did_you_mean

TOP_K = 3
BATCH_SIZE = 1024  # rows per forward pass; a larger request runs in chunks of this many
CALIBRATION = "calibration.json"  # in the run dir: evaluate.calibration's fitted temperature


class Collected(NamedTuple):
    """``predict(rows, errors="collect")``: one answer per input row (None where the row
    could not be used) and a problem per bad row (index, field, value, reason)."""

    predictions: list[dict[str, Any] | None]
    errors: list[RowProblem]


class Prepared(NamedTuple):
    """Preprocessed rows: model input for the usable ones, their indices, the problems
    of the others, and how many rows there were."""

    x: np.ndarray
    good: np.ndarray
    problems: list[RowProblem]
    n: int


class Predictor:
    """A fitted preprocessor and a model backend, with the post-processing that turns the
    model's outputs into answers: class names, probabilities and top-k (classification),
    values in the target's units (regression), per-row scores (a VAE's loss and
    reconstruction error, a language model's loss and perplexity)."""

    def __init__(
        self,
        preprocessor: Preprocessor,
        backend: Backend,
        *,
        model: dict[str, Any] | None = None,
        batch_size: int = BATCH_SIZE,
        temperature: float = 1.0,
    ) -> None:
        self.preprocessor = preprocessor
        self.temperature = temperature  # classification logits are divided by it (calibration)
        self.backend = backend
        self.model = model or {}  # what runs: {"format", "path"}
        self.batch_size = batch_size
        self._known = preprocessor.known_fields()
        # a VAE (its own objective) answers with per-row scores whatever the task
        self.kind = "scores" if getattr(backend, "own_objective", False) else preprocessor.task

    @classmethod
    def from_run(cls, run_dir: str | Path, model: str | Path = "selected", **kwargs: Any) -> Predictor:
        """The Predictor of a run directory.

        Args:
            run_dir: a run directory (``raydl run`` wrote it).
            model: ``"selected"`` — the model the compression stage chose (``model/``,
                see :mod:`raydl.backends`), else the best checkpoint; ``"best"`` — the
                best checkpoint; or a path: a checkpoint folder, a ``model/`` folder,
                an ``.onnx`` file or a torch module file.

        Raises:
            RaydlError: not a run directory, or no model where ``model`` says.
        """
        from raydl.rundir import RunDir

        run = RunDir.open(run_dir)
        pre = Preprocessor.load(run.preprocessor)
        if model == "selected":
            chosen = (run.selected_model / "selected.json").is_file()
            where = run.selected_model if chosen else run.best_checkpoint
        elif model == "best":
            where = run.best_checkpoint
        else:
            where = Path(model)
        if where == run.best_checkpoint and not (where / "model.json").is_file():
            raise RaydlError(f"{run_dir}: no best checkpoint ({where}); did training finish?")
        backend, described = load_backend(where, pre.task)
        calibration = run.path / CALIBRATION
        if calibration.is_file() and "temperature" not in kwargs:
            import json

            kwargs["temperature"] = float(json.loads(calibration.read_text())["temperature"])
        return cls(pre, backend, model=described, **kwargs)

    @classmethod
    def from_model(cls, preprocessor: Preprocessor, model: Any, **kwargs: Any) -> Predictor:
        """A Predictor for a torch module in memory (evaluation, compression)."""
        return cls(preprocessor, TorchBackend(model, preprocessor.task), model={"format": "torch"}, **kwargs)

    # ------------------------------------------------------------- for serving
    @property
    def task(self) -> str:
        return self.preprocessor.task

    @property
    def classes(self) -> list[Any] | None:
        """The class names, as the data names them (classification), in output order."""
        return list(self.preprocessor.classes or []) if self.task == "classification" else None

    @property
    def input_schema(self) -> dict[str, Any]:
        """What a row holds: see :meth:`raydl.data.preprocess.Preprocessor.input_schema`."""
        return self.preprocessor.input_schema()

    @property
    def output_columns(self) -> list[str]:
        """The columns :meth:`predict_columns` returns (batch inference writes them)."""
        if self.kind == "classification":
            return ["pred_label", "pred_probability", *(f"pred_p_{c}" for c in self.classes or [])]
        if self.kind == "regression":
            return ["pred_value"]
        if self.kind == "language_modeling":
            return ["pred_loss", "pred_perplexity", "pred_tokens"]
        return ["pred_loss", "pred_reconstruction_error"]

    # ------------------------------------------------------------- the path
    def preprocess(self, batch: Any, *, unknown: str = "error") -> Prepared:
        """Raw rows → model input for the usable rows, their indices and the problems.

        Args:
            batch: one dict (one row), a list of dicts, a pandas DataFrame, a pyarrow
                Table, or columns (a dict of equal-length arrays, as Ray Data hands them:
                pass it as :class:`Columns`).
            unknown: a field the model does not know is a problem (``error``) or ignored.
        """
        if isinstance(batch, Columns):
            cols, n = dict(batch), rows.batch_length(batch)
        else:
            try:
                cols, n = rows.to_columns(batch)
            except TypeError as e:
                raise RequestError([RowProblem(None, None, None, str(e))]) from None
        if n == 0:
            raise RequestError([RowProblem(None, None, None, "no rows given")])
        problems: list[RowProblem] = []
        if unknown == "error":
            problems += self._unknown(cols)
        x, good, bad = self.preprocessor.transform(cols, n=n)
        problems += bad
        if problems and len(good):
            flagged = {p.row for p in problems}
            keep = np.asarray([i not in flagged for i in good])
            x, good = x[keep], good[keep]
        problems.sort(key=lambda p: (p.row if p.row is not None else -1, p.field or ""))
        return Prepared(x, good, problems, n)

    def _unknown(self, cols: dict[str, np.ndarray]) -> list[RowProblem]:
        problems = []
        for name in cols:
            if name in self._known:
                continue
            fields = sorted(self.preprocessor.input_schema()["fields"], key=lambda f: f["name"])
            names = [f["name"] for f in fields]
            hint = did_you_mean(name, sorted(self._known))
            reason = f"unknown field; {hint}the model reads {', '.join(names)}"
            values = cols[name]
            given = ~rows.missing(values)
            problems += [RowProblem(int(i), name, _plain(values[i]), reason) for i in np.flatnonzero(given)]
        return problems

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Preprocessed input → the backend's named outputs, in chunks of ``batch_size``
        rows (one vectorised pass per chunk)."""
        if len(x) <= self.batch_size:
            return self.backend(x)
        parts = [self.backend(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def postprocess(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The backend's outputs → answer columns (see :attr:`output_columns`):
        classification ``probabilities`` (B, classes) and ``label_id`` too."""
        pre = self.preprocessor
        if self.kind == "classification":
            logits = np.asarray(outputs["logits"], dtype=np.float64) / self.temperature
            e = np.exp(logits - logits.max(-1, keepdims=True))
            probs = (e / e.sum(-1, keepdims=True)).astype(np.float32)
            ids = probs.argmax(-1)
            labels = np.asarray(pre.classes, dtype=object)[ids]
            return {"label_id": ids, "label": labels, "probabilities": probs}
        if self.kind == "regression":
            return {"value": pre.decode_target(np.asarray(outputs["output"], dtype=np.float64))}
        if self.kind == "language_modeling":
            loss = np.asarray(outputs["loss"], dtype=np.float64)
            return {"loss": loss, "perplexity": np.exp(np.minimum(loss, 700.0)), "tokens": outputs["tokens"]}
        return {k: np.asarray(v, dtype=np.float64) for k, v in outputs.items()}

    def predict(
        self, batch: Any, *, errors: str = "raise", top_k: int = TOP_K, unknown: str = "error"
    ) -> Any:
        """Answers for raw rows: one dict for one dict given, else a list of dicts.

        Classification: ``{"label", "probability", "probabilities": {class: p},
        "top_k": [{"label", "probability"}, ...]}``; regression: ``{"value"}``; a VAE:
        ``{"loss", "reconstruction_error"}``; a language model ``{"loss",
        "perplexity", "tokens"}``.

        Args:
            errors: ``raise`` — a :class:`RequestError` naming the bad rows; ``collect``
                — a :class:`Collected` (answers with None for bad rows, and the problems).
            unknown: a field the model does not know is a problem (``error``) or ignored.

        Raises:
            RequestError: a row cannot be used (``errors="raise"``), or no rows.
        """
        if errors not in ("raise", "collect"):
            raise ValueError(f"errors: 'raise' or 'collect', got {errors!r}")
        prepared = self.preprocess(batch, unknown=unknown)
        if prepared.problems and errors == "raise":
            raise RequestError(prepared.problems)
        answers = []
        if len(prepared.good):
            answers = self._answers(self.postprocess(self.forward(prepared.x)), top_k)
        if errors == "collect":
            out: list[dict[str, Any] | None] = [None] * prepared.n
            for i, a in zip(prepared.good, answers):
                out[int(i)] = a
            return Collected(out, prepared.problems)
        return answers[0] if isinstance(batch, dict) and not isinstance(batch, Columns) else answers

    def answer(self, outputs: dict[str, np.ndarray], *, top_k: int = TOP_K) -> list[dict[str, Any]]:
        """The backend's outputs for preprocessed rows → one answer per row, as
        :meth:`predict` gives them (a server that batches requests calls
        :meth:`preprocess`, then one :meth:`forward` for the batch, then this per request)."""
        return self._answers(self.postprocess(outputs), top_k)

    def predict_columns(
        self, batch: Any, *, unknown: str = "ignore"
    ) -> tuple[dict[str, np.ndarray], Prepared]:
        """Batch inference's form: answer columns named as :attr:`output_columns` for the
        usable rows of ``batch``, and what preprocessing found."""
        prepared = self.preprocess(batch, unknown=unknown)
        if not len(prepared.good):
            return {c: np.zeros(0) for c in self.output_columns}, prepared
        post = self.postprocess(self.forward(prepared.x))
        if self.kind == "classification":
            cols = {"pred_label": post["label"], "pred_probability": post["probabilities"].max(-1)}
            for j, c in enumerate(self.classes or []):
                cols[f"pred_p_{c}"] = post["probabilities"][:, j]
            return cols, prepared
        return {f"pred_{k}": v for k, v in post.items()}, prepared

    def _answers(self, post: dict[str, np.ndarray], top_k: int) -> list[dict[str, Any]]:
        if self.kind != "classification":
            keys = list(post)
            return [{k: _plain(post[k][i]) for k in keys} for i in range(len(post[keys[0]]))]
        names = [_plain(c) for c in self.classes or []]
        keys = [str(c) for c in names]
        k = max(1, min(top_k, len(names)))
        probs = post["probabilities"].astype(np.float64)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for i, p in enumerate(probs):
            top = order[i]
            out.append(
                {
                    "label": names[top[0]],
                    "probability": float(p[top[0]]),
                    "probabilities": dict(zip(keys, p.tolist())),
                    "top_k": [{"label": names[j], "probability": float(p[j])} for j in top],
                }
            )
        return out


class Columns(dict):
    """A batch given as columns (``{field: array}``, equal lengths), not as one row."""


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
