"""Training code (PyTorch, extra ``[train]``): never imported at run time."""
