"""A checkpoint restores everything a resumed run needs: weights, optimizer moments,
the LR schedule's position and the fp16 loss scale; and DeepSpeed's config comes from
the spec."""

import torch
import torch.nn as nn

from raydl.spec import TrainSpec
from raydl.train import checkpoint as ckpt
from raydl.train.control import bad_step_reason
from raydl.train.strategy import deepspeed_config, requirements_problems


def _parts(seed):
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    return model, opt, sched, scaler


def test_train_state_round_trip(tmp_path):
    model, opt, sched, scaler = _parts(0)
    for _ in range(3):
        opt.zero_grad()
        scaler.scale(model(torch.randn(8, 4)).pow(2).mean()).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
    scaler.update(new_scale=64.0)
    ckpt.save(
        tmp_path,
        model,
        {"arch": "x"},
        train_state={"epoch": 3, "best": 0.5, "stale": 1},
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
    )

    model2, opt2, sched2, scaler2 = _parts(1)
    state = ckpt.load_train_state(tmp_path, model2, opt2, sched2, scaler2)
    assert state == {"epoch": 3, "best": 0.5, "stale": 1}
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["exp_avg"], opt2.state[q]["exp_avg"])
    assert sched2.last_epoch == 3 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.05
    assert scaler2.get_scale() == 64.0


def test_deepspeed_config_is_derived_from_the_spec():
    t = TrainSpec(strategy="deepspeed", zero_stage=3, batch_size=64, grad_clip=0.5, precision="bf16")
    cfg = deepspeed_config(t, world_size=2)
    assert cfg["train_micro_batch_size_per_gpu"] == 32 and cfg["train_batch_size"] == 64
    assert cfg["zero_optimization"] == {"stage": 3} and cfg["gradient_clipping"] == 0.5
    assert cfg["bf16"] == {"enabled": True} and cfg["fp16"] == {"enabled": False}
    assert "optimizer" not in cfg  # the spec's torch optimizer is passed in, not DeepSpeed's own


def test_requirements_say_what_the_machine_lacks():
    (line,) = requirements_problems(TrainSpec(precision="fp16"))
    assert line.startswith("train.precision: fp16 needs a GPU") and "bf16 on CPU" in line
    assert requirements_problems(TrainSpec(precision="bf16", strategy="deepspeed")) == []


def test_bad_step_reasons():
    assert bad_step_reason(1.0, None) is None and bad_step_reason(None, 1.0) is None
    assert "nan" in bad_step_reason(float("nan"), None)
    assert "exceeds train.grad_norm_limit 2" in bad_step_reason(3.0, 2.0)


def test_tied_weights_save_and_reload(tmp_path):
    # GPT-2 ties its output head to its input embedding: safetensors refuses shared
    # storage, so each is written as its own copy; the reloaded model is tied again
    from raydl.models import build_model

    info = {"vocab_size": 50, "pad_id": 0, "max_length": 16}
    params = {"dim": 16, "layers": 1, "heads": 2}
    model = build_model("gpt2", (16,), 1, params, info).eval()
    config = {"arch": "gpt2", "params": params, "input_shape": [16], "num_outputs": 1, "data_info": info}
    ckpt.save_weights(tmp_path, model.state_dict(), config)
    back = ckpt.load_model_dir(tmp_path)
    x = torch.randint(1, 50, (2, 16))
    assert torch.equal(model(x), back(x))
    assert back.model.lm_head.weight.data_ptr() == back.model.transformer.wte.weight.data_ptr()


def test_pbt_values_reach_a_restored_optimizer_and_keep_the_schedule_position():
    import pytest

    from raydl.spec import OptimizerSpec
    from raydl.train.session import apply_optimizer_values

    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    apply_optimizer_values(opt, sched, OptimizerSpec(type="adamw", lr=4e-3, weight_decay=0.01))
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3)  # half of the new base, as before
    assert opt.param_groups[0]["weight_decay"] == 0.01
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3)
