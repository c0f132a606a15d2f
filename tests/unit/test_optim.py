import torch

from raydl.spec import LossSpec, OptimizerSpec, SchedulerSpec
from raydl.train.optim import LOSSES, OPTIMIZERS, SCHEDULERS


def _lrs(spec: SchedulerSpec, total: int, per_epoch: int) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = OPTIMIZERS.get("sgd")([p], OptimizerSpec(type="sgd", lr=1.0))
    sched = SCHEDULERS.get(spec.type)(opt, spec, total_steps=total, steps_per_epoch=per_epoch)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_cosine_warms_up_then_decays_to_min_lr():
    lrs = _lrs(SchedulerSpec(type="cosine", warmup_epochs=1, min_lr=0.1), total=40, per_epoch=10)
    assert lrs[0] == 0.1 and abs(lrs[9] - 1.0) < 1e-9  # linear warm-up over one epoch
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then never increases
    assert 0.1 <= lrs[-1] < 0.11


def test_step_schedule_counts_epochs():
    lrs = _lrs(SchedulerSpec(type="step", step_size=2, gamma=0.5), total=60, per_epoch=10)
    assert lrs[19] == 1.0 and lrs[20] == 0.5 and lrs[40] == 0.25


def test_optimizers_and_losses_by_name():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(OPTIMIZERS.get("adamw")(p, OptimizerSpec(lr=0.1)), torch.optim.AdamW)
    sgd = OPTIMIZERS.get("sgd")(p, OptimizerSpec(type="sgd", lr=0.1, momentum=0.8, nesterov=True))
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.8
    ce = LOSSES.get("cross_entropy")(LossSpec(label_smoothing=0.1))
    assert ce.label_smoothing == 0.1
    assert float(LOSSES.get("mae")(LossSpec())(torch.ones(3), torch.zeros(3))) == 1.0
