"""Training code (PyTorch, extra ``[train]``): never imported at run time.

Layer 6 (offline): may import the run-time layers (``spec`` for the contract it writes into the
shipped JSON, ``audio``, ``render``, ``motion``), ``data`` and ``eval.split``; nothing on the
run-time path imports it (tests/test_layering.py). ``motion.py`` trains the motion diffusion
models, ``render.py`` the renderer."""
