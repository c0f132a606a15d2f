"""Gradient accumulation through the DDP strategy, driven the way the training loop drives
it: windows of k micro-batches, forward+backward inside ``micro_step``, one norm/clip and
one optimizer step per window. The strategy runs on a plain model and on a real
DistributedDataParallel model (a one-process gloo group), where the non-final micro-steps
run in ``no_sync``."""

import socket
from contextlib import contextmanager, nullcontext

import pytest
import torch
import torch.distributed as dist

from raydl.spec import TrainSpec
from raydl.train.accumulation import optimizer_steps, windows
from raydl.train.strategy import DDPStrategy


@contextmanager
def _one_process_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _data(n: int):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _epoch(model, batches, k, grad_clip=None, ddp=False):
    """One epoch as the loop runs it; returns (trained module, norms, optimizer steps)."""
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    strategy = DDPStrategy(model, opt, None, TrainSpec(grad_accumulation=k, grad_clip=grad_clip))
    norms, sizes = [], []
    for window in windows(batches, strategy.accumulate):
        for i, (x, y) in enumerate(window):
            with strategy.micro_step(i == len(window) - 1):
                strategy.backward(torch.nn.functional.cross_entropy(strategy.model(x), y), len(window))
        norm = strategy.finish_window()
        norms.append(strategy.grad_norm() if norm is None else norm)
        strategy.step()
        sizes.append(len(window))
        assert all(p.grad is None for p in model.parameters()), "step() leaves no gradient behind"
    return strategy.module, norms, sizes


@pytest.mark.parametrize("ddp", [False, True], ids=["plain", "ddp-no_sync"])
def test_two_micro_batches_equal_one_batch_of_32(ddp):
    x, y = _data(32)
    with _one_process_group() if ddp else nullcontext():
        big, big_norms, _ = _epoch(_model(), [(x, y)], k=1, grad_clip=0.05, ddp=ddp)
        acc, acc_norms, sizes = _epoch(
            _model(), [(x[:16], y[:16]), (x[16:], y[16:])], k=2, grad_clip=0.05, ddp=ddp
        )
    assert sizes == [2]
    # the clip threshold bites (norm > 0.05): clipping saw the summed window gradient
    assert big_norms[0] > 0.05 and acc_norms == pytest.approx(big_norms, rel=1e-5)
    for a, b in zip(acc.parameters(), big.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    # and the step moved the weights: not a trivially equal pair
    assert not torch.allclose(next(acc.parameters()), next(_model().parameters()))


def test_short_last_window_is_a_mean_too():
    # 3 micro-batches of 16 with k=2: a full window (32 rows) then a short one (16 rows);
    # the short window's gradient is its mean (rescaled by k/m = 2), the same as a
    # k=1 step on that batch alone
    x, y = _data(48)
    acc, _, sizes = _epoch(_model(), [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])], k=2)
    assert sizes == [2, 1] and optimizer_steps(3, 2) == 2
    want, _, _ = _epoch_two_steps(x, y)
    for a, b in zip(acc.parameters(), want.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def _epoch_two_steps(x, y):
    """The same two optimizer steps taken by hand: one batch of 32, then one of 16."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for xb, yb in ((x[:32], y[:32]), (x[32:], y[32:])):
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        opt.zero_grad()
    return model, None, None


def test_windows_and_step_count():
    assert list(windows(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(windows(range(4), 1)) == [[0], [1], [2], [3]]
    assert list(windows([], 3)) == []
    assert [optimizer_steps(b, 2) for b in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
