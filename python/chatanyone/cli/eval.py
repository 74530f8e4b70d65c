"""``chatanyone eval motion CLIP... [--json]``, ``chatanyone eval render ...``, ``chatanyone eval lipsync VIDEO...``,
``chatanyone eval ablation CLIP...``, ``chatanyone eval budget VIDEO...``.

Each sub-verb lives in ``chatanyone.eval.<name>`` with ``add_arguments(parser)`` and ``run(args)``;
a sub-verb whose module is not installed is simply not offered.
"""
from __future__ import annotations

import importlib

_SUBVERBS = {
    "motion": "audio-driven motion against real clips: LMD, mouth-opening correlation, baselines, "
              "Diversity, style (Table 4), DDIM steps, time per window",
    "render": "the renderer against real clips (self-reenactment)",
    "ablation": "which parts of the motion model help lip sync: every variant (shipped diffusion mouth, "
                "low latency, mouth predictor with and without its parts) beside the baselines, per clip",
    "budget": "where the renderer's person-pixel error lies: by region (mouth, eyes, face, arms, outline, "
              "neck, hair, torso) and against ceilings (global affine, brightness, optical-flow oracles)",
    "lipsync": "lip sync end to end: a Session driven by each video's own audio against the real mouth "
               "(face mesh), beside no-motion and loudness baselines",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate the shipped models on real clips",
                              description="Evaluate the shipped models on real clips.")
    sub = p.add_subparsers(dest="eval_what", metavar="WHAT")
    for name, help_text in _SUBVERBS.items():
        try:
            mod = importlib.import_module(f"chatanyone.eval.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"chatanyone.eval.{name}":
                continue  # not built yet
            raise
        sp = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).splitlines()[0])
        mod.add_arguments(sp)
        sp.set_defaults(func=mod.run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
