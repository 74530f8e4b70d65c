"""Renderer speed at each preset on this machine.

The quality preset (512x768) has no trained weights yet, so its graphs are exported here from a
randomly initialised model of the same architecture: the timing is the architecture's (the
weights' values do not change the work), the images are meaningless and are not looked at.
"""
import pytest

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_renderer_preset_speed(benchmark, tmp_path, preset):
    import sys
    from pathlib import Path

    from chatanyone.render.bench import benchmark as render_bench

    weights_dir = None
    if preset == "quality":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from onnx_export.render import export
        from chatanyone.train.render import RenderModel

        torch.manual_seed(0)
        export(RenderModel("quality").eval(), tmp_path)
        weights_dir = str(tmp_path)
    frames = 3 if preset == "quality" else 20
    r = benchmark.pedantic(render_bench, args=(preset, frames, 2, weights_dir), rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in r.items() if k != "stages_ms"}, **{
        f"stage_{k}": v for k, v in r["stages_ms"].items()})
    assert r["fps"] > 0
