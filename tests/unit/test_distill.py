"""Distillation's loss (raydl.train.distill) and its spec rules (raydl.checks)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from raydl.errors import SpecError
from raydl.spec import validate_spec
from raydl.train.distill import DistillLoss, distill_loss, soft_loss
from raydl.train.objectives import forward_loss

torch.manual_seed(0)
STUDENT, TEACHER, Y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))


def test_alpha_zero_is_the_labels_loss_alone():
    loss = distill_loss(STUDENT, TEACHER, Y, F.cross_entropy, temperature=4.0, alpha=0.0)
    assert torch.equal(loss, F.cross_entropy(STUDENT, Y))


def test_soft_loss_is_kl_of_the_softened_teacher_scaled_by_t_squared():
    for t in (1.0, 4.0):
        p_teacher = F.softmax(TEACHER / t, -1)
        kl = (p_teacher * (p_teacher.log() - F.log_softmax(STUDENT / t, -1))).sum(-1).mean()
        assert soft_loss(STUDENT, TEACHER, t) == pytest.approx(float(kl) * t * t, rel=1e-5)
    assert soft_loss(TEACHER, TEACHER, 4.0) == pytest.approx(0.0, abs=1e-6)
    mixed = distill_loss(STUDENT, TEACHER, Y, F.cross_entropy, temperature=2.0, alpha=0.7)
    expected = 0.7 * soft_loss(STUDENT, TEACHER, 2.0) + 0.3 * F.cross_entropy(STUDENT, Y)
    assert mixed == pytest.approx(float(expected), rel=1e-6)


def test_the_training_step_feeds_the_teacher_the_batch_and_leaves_it_frozen():
    teacher, student = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.5)), nn.Linear(3, 5)
    loss_fn = DistillLoss(teacher, nn.CrossEntropyLoss(), temperature=4.0, alpha=1.0).train()
    x = torch.randn(8, 3)
    _, loss = forward_loss(student, x, Y, loss_fn, "classification")
    with torch.no_grad():
        expected = soft_loss(student(x), teacher(x), 4.0)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    loss.backward()
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    assert student.weight.grad is not None


def _spec(**over):
    raw = {
        "name": "distill",
        "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
        "model": {"arch": "cnn"},
        "compress": {"distill": {"student": {"arch": "mobilenet", "params": {"width": 0.25}}}},
    }
    return raw | over


def test_a_distill_section_is_typed_with_defaults():
    d = validate_spec(_spec()).compress.distill
    assert (d.temperature, d.alpha, d.epochs, d.baseline) == (4.0, 0.7, None, True)
    with pytest.raises(SpecError) as e:
        validate_spec(
            _spec(
                compress={"distill": {"student": {"arch": "mobilenet", "params": {"widht": 1}}, "alpha": 2}}
            )
        )
    paths = sorted(line.split(":")[0] for line in e.value.lines())
    assert paths == ["compress.distill.alpha", "compress.distill.student.params.widht"]


def test_distilling_a_regression_model_is_refused_in_one_line():
    raw = _spec(
        data={"source": {"type": "builtin", "name": "diabetes"}, "label": "target", "task": "regression"}
    )
    raw["model"] = {"arch": "mlp"}
    raw["compress"]["distill"]["student"] = {"arch": "mlp", "params": {"hidden": [8]}}
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    (line,) = e.value.lines()
    assert (
        line.startswith("compress.distill: distils a classifier's class probabilities")
        and "regression" in line
    )
