"""Evaluation of the trained parts against real clips (``chatanyone eval ...``) and the speaker
split every evaluation and training run uses (:mod:`.split`).

Layer 6 (offline): may import the run-time layers and ``data``; nothing on the run-time path
imports it (tests/test_layering.py)."""
