"""Evaluation of the trained parts against real clips (``chatanyone eval ...``)."""
