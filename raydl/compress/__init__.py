"""The compression stage: candidates built from the trained model, measured alike, and a
gate that selects the one serving uses (see :mod:`raydl.compress.stage`)."""
