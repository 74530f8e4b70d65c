"""The package's layers and what each may import (docs/design.md "Layers"), checked two ways:
statically over every import statement in python/chatanyone (lazy imports inside functions
included), and at run time: a whole Session in a fresh interpreter loads neither torch nor any
offline module (``chatanyone.train``, ``chatanyone.data``, ``chatanyone.eval``)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "python" / "chatanyone"

# bottom (0) to top; a module may import its own layer and the layers below it
LAYERS = {
    "_native": 0, "ops": 0, "_version": 0,            # the native extension and its typed wrappers
    "spec": 1, "inputs": 1,                             # the run-time contract; input validation
    "audio": 2, "vision": 2, "runners": 2, "media": 2,  # inputs, ONNX Runtime, file I/O
    "motion": 3, "render": 3,                           # the two model stages
    "config": 4, "avatar": 4, "pipeline": 4, "session": 4, "assets": 4, "__init__": 4,  # public API
    "data": 5,                                          # offline: corpus
    "serve": 5, "integrations": 5,                      # live applications on the public API
    "train": 6, "eval": 6, "reenact": 6,                # offline: training, evaluation, video-driven reenactment
    "cli": 7, "__main__": 7,                            # the command line, on top
}
OFFLINE = {"data", "train", "eval", "reenact"}
# same layer, but independent: neither may import the other
SEPARATE = {("motion", "render"), ("render", "motion"), ("audio", "vision"), ("vision", "audio"),
            ("runners", "audio"), ("runners", "vision"), ("audio", "runners"), ("vision", "runners")}
# what spec may import: nothing but itself (numpy and the standard library outside the package)
SPEC_ALLOWED = {"spec"}


def _part(module: str) -> str:
    """``chatanyone.render.keypoints`` -> ``render``; ``chatanyone`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports():
    """Yield ``(importer module, imported module, line)`` for every chatanyone import in the package."""
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts)
        is_pkg = path.name == "__init__.py"
        if is_pkg:
            mod = mod[: -len(".__init__")]
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "chatanyone":
                        yield mod, a.name, node.lineno
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "chatanyone":
                    continue
                if node.module is None or target == "chatanyone":  # `from . import x`: x are modules
                    for a in node.names:
                        yield mod, f"{target}.{a.name}", node.lineno
                else:
                    yield mod, target, node.lineno


def test_every_module_has_a_layer():
    parts = {_part(m) for m, _, _ in _imports()} | {p.stem if p.is_file() else p.name
                                                      for p in PKG.iterdir() if p.suffix == ".py" or
                                                      (p.is_dir() and (p / "__init__.py").exists())}
    assert parts <= set(LAYERS), f"modules without a layer in this test and docs/design.md: {parts - set(LAYERS)}"


def test_imports_follow_the_layers():
    bad = []
    for src, dst, line in _imports():
        a, b = _part(src), _part(dst)
        if a == b:
            continue
        if b not in LAYERS:  # e.g. `from chatanyone import something` names a function: skip
            continue
        if LAYERS[b] > LAYERS[a] or (a, b) in SEPARATE or (a == "spec" and b not in SPEC_ALLOWED):
            bad.append(f"{src}:{line} imports {dst} ({a} -> {b})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_run_time_never_imports_offline_code():
    bad = [f"{s}:{line} imports {d}" for s, d, line in _imports()
           if _part(s) not in OFFLINE | {"cli", "__main__"} and _part(d) in OFFLINE]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    """No two modules import each other, directly or through others (lazy imports included)."""
    mods = {m for m, _, _ in _imports()}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for s, d, _ in _imports():
        # a package import means its __init__; `from pkg import mod` was resolved to pkg.mod above
        if d in mods and d != s and not s.startswith(d + "."):
            graph[s].add(d)
    seen, stack, cycles = set(), [], []

    def visit(n, on_path):
        if n in on_path:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        on_path.add(n)
        stack.append(n)
        for m in sorted(graph[n]):
            visit(m, on_path)
        stack.pop()
        on_path.discard(n)

    for n in sorted(graph):
        visit(n, set())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


_SESSION_SCRIPT = r"""
import json, sys
import numpy as np
import chatanyone as ca
from chatanyone.assets import default_avatar_image, demo_speech
pcm, rate = demo_speech()
avatar = ca.Avatar.prepare(default_avatar_image())
n = 0
with ca.Session(avatar, ca.SessionConfig()) as s:
    s.feed_audio(pcm[: rate // 2], rate)
    s.flush()
    for f in s.frames():
        n += 1
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")
                or m.split(".")[:2] in (["chatanyone", "train"], ["chatanyone", "data"], ["chatanyone", "eval"]))
print(json.dumps({"frames": n, "loaded": loaded}))
"""


@pytest.mark.skipif(not (PKG / "weights" / "render_fast_decoder.onnx").is_file(), reason="no shipped weights")
def test_a_whole_session_loads_no_torch_and_no_offline_code():
    r = subprocess.run([sys.executable, "-c", _SESSION_SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["frames"] == 13  # 0.5 s at 25 fps: the Session really ran
    assert out["loaded"] == [], f"a Session loaded {out['loaded']}"
