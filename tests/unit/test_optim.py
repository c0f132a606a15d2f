import torch

from raydl.spec import LossSpec, OptimizerSpec, SchedulerSpec
from raydl.train.optim import LOSSES, OPTIMIZERS, SCHEDULERS, build_loss, epoch_end, steps_per_batch


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


def test_one_cycle_rises_to_lr_then_anneals():
    lrs = _lrs(SchedulerSpec(type="one_cycle", pct_start=0.25), total=40, per_epoch=10)
    peak = max(range(40), key=lrs.__getitem__)
    assert 8 <= peak <= 11 and abs(lrs[peak] - 1.0) < 1e-6
    assert lrs[0] < 0.1 and lrs[-1] < 1e-3


def test_plateau_decays_only_when_the_epoch_metric_stalls():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = OPTIMIZERS.get("rmsprop")([p], OptimizerSpec(type="rmsprop", lr=1.0, weight_decay=0.01))
    spec = SchedulerSpec(type="plateau", patience=1, gamma=0.5)
    sched = SCHEDULERS.get("plateau")(opt, spec, total_steps=10, steps_per_epoch=5)
    assert not steps_per_batch(sched) and steps_per_batch(SCHEDULERS.get("step")(opt, spec, 10, 5))
    lrs = []
    for val_loss in [1.0, 0.9, 0.9, 0.9, 0.8]:
        epoch_end(sched, {"val_loss": val_loss}, spec)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_cross_entropy_takes_soft_targets_and_class_weights():
    out = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    ce = build_loss(LossSpec(), "classification")
    soft = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(ce(out, y), ce(out, soft))
    # the data's class weights are used; the spec's own take precedence
    weighted = build_loss(LossSpec(), "classification", class_weights=[1.0, 0.0, 0.0])
    assert torch.allclose(weighted(out, y), torch.nn.functional.cross_entropy(out[y == 0], y[y == 0]))
    spec_w = build_loss(
        LossSpec(class_weights=[0.0, 1.0, 0.0]), "classification", class_weights=[1.0, 0.0, 0.0]
    )
    assert torch.allclose(spec_w(out, y), torch.nn.functional.cross_entropy(out[y == 1], y[y == 1]))


def test_focal_is_cross_entropy_at_gamma_zero_and_down_weights_easy_rows():
    out = torch.tensor([[4.0, 0.0], [0.2, 0.0]])  # an easy row and a hard one
    y = torch.tensor([0, 0])
    ce = torch.nn.functional.cross_entropy(out, y)
    assert torch.allclose(build_loss(LossSpec(type="focal", gamma=0.0), "classification")(out, y), ce)
    focal = build_loss(LossSpec(type="focal", gamma=2.0), "classification")
    per_row = [float(focal(out[i : i + 1], y[i : i + 1])) for i in range(2)]
    ce_rows = [float(torch.nn.functional.cross_entropy(out[i : i + 1], y[i : i + 1])) for i in range(2)]
    assert per_row[0] / ce_rows[0] < 0.01 < per_row[1] / ce_rows[1]


def test_bce_one_hot_and_weighted_sum_of_heads():
    out = torch.randn(4, 3)
    y = torch.tensor([0, 2, 1, 0])
    bce = build_loss(LossSpec(type="bce"), "classification")
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        out, torch.nn.functional.one_hot(y, 3).float()
    )
    assert torch.allclose(bce(out, y), expected)
    reg = torch.randn(4)
    spec = LossSpec(
        type="weighted_sum",
        terms=[{"type": "cross_entropy", "weight": 2.0}, {"type": "huber", "weight": 0.5}],
    )
    loss = build_loss(spec, "classification")
    target = torch.randn(4)
    got = loss((out, reg), (y, target))
    want = 2.0 * torch.nn.functional.cross_entropy(out, y) + 0.5 * torch.nn.functional.huber_loss(reg, target)
    assert torch.allclose(got, want)


def test_regression_losses():
    out, y = torch.tensor([0.0, 3.0]), torch.tensor([1.0, 0.0])
    assert float(build_loss(LossSpec(type="mae"), "regression")(out, y)) == 2.0
    assert float(build_loss(LossSpec(), "regression")(out, y)) == 5.0
    assert float(build_loss(LossSpec(type="huber", delta=1.0), "regression")(out, y)) == (0.5 + 2.5) / 2
