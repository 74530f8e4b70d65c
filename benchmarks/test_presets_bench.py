"""Renderer speed at each preset on this machine, with the shipped weights.

The quality preset (512x768) is the fast preset's four graphs on the crop downsized 2x plus its
full-resolution detail graph; both run here in the same process, so their ratio is fair.
"""
import pytest


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_renderer_preset_speed(benchmark, preset):
    from chatanyone.render.bench import benchmark as render_bench

    frames = 10 if preset == "quality" else 20
    r = benchmark.pedantic(render_bench, args=(preset, frames, 2, None), rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in r.items() if k != "stages_ms"}, **{
        f"stage_{k}": v for k, v in r["stages_ms"].items()})
    assert r["fps"] > 0
