"""Run the shipped landmark models (TFLite flatbuffers) with the LiteRT interpreter (ai-edge-litert).

The face landmark model with attention (478 points: mesh, lips, eyes, irises) contains three
MediaPipe custom operators that LiteRT's builtin resolver does not know:

- ``Landmarks2TransformMatrix``: a rotated crop around a landmark subset (lips, one eye) as a 4x4
  matrix from crop pixels to feature-map pixels;
- ``TransformTensorBilinear``: samples a feature map through that matrix (a spatial transformer);
- ``TransformLandmarks``: maps the region's landmarks back through the matrix.

:class:`TFLiteModel` therefore splits such a graph at its custom operators: each run of builtin
operators becomes its own small LiteRT model (the same flatbuffer with the operator list, inputs
and outputs cut down; weights shared), and the custom operators run in numpy between them,
written from their definitions (mediapipe/util/tflite/operations, Apache-2.0). A graph without
custom operators is one interpreter.

Blocking; one :class:`TFLiteModel` per thread (interpreters are not thread-safe).
"""
from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np

log = logging.getLogger("chatanyone")


def _litert():
    try:
        from ai_edge_litert import interpreter as litert_interpreter
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # a dependency of the package; only a broken install lacks it
        raise ImportError("the landmark detector needs the LiteRT interpreter: pip install ai-edge-litert "
                          "(a dependency of chatanyone; reinstall the package)") from exc
    return litert_interpreter, schema


# ---- the three MediaPipe custom operators ---------------------------------------------------------

def _landmarks_to_transform_matrix(lms: np.ndarray, opts: dict) -> np.ndarray:
    """``Landmarks2TransformMatrix`` v2: ``lms [1, N, 3]`` -> ``[1, 4, 4]`` (crop px -> input px)."""
    p = lms.reshape(-1, 3).astype(np.float64)
    left, right = p[opts["left_rotation_idx"], :2], p[opts["right_rotation_idx"], :2]
    rot = float(opts.get("target_rotation_radians", 0.0)) - math.atan2(right[1] - left[1], right[0] - left[0])
    c, s = math.cos(rot), math.sin(rot)
    sub = p[np.asarray(opts["subset_idxs"], int), :2]
    rx = sub[:, 0] * c - sub[:, 1] * s
    ry = sub[:, 0] * s + sub[:, 1] * c
    w, h = rx.max() - rx.min(), ry.max() - ry.min()
    mx, my = (rx.max() + rx.min()) / 2, (ry.max() + ry.min()) / 2
    cx, cy = mx * c + my * s, -mx * s + my * c      # rotated back by -rot
    ow, oh = float(opts["output_width"]), float(opts["output_height"])
    sx = float(opts["scale_x"]) * w / ow
    sy = float(opts["scale_y"]) * h / oh
    # shift(cx, cy) @ rotation(-rot) @ scale(sx, sy) @ shift(-ow/2, -oh/2)
    cr, sr = math.cos(-rot), math.sin(-rot)
    a = np.array([[cr * sx, -sr * sy], [sr * sx, cr * sy]])
    t = np.array([cx, cy]) - a @ np.array([ow / 2, oh / 2])
    m = np.eye(4)
    m[:2, :2] = a
    m[:2, 3] = t
    return m[None].astype(np.float32)


def _transform_tensor_bilinear(x: np.ndarray, m: np.ndarray, opts: dict) -> np.ndarray:
    """``TransformTensorBilinear`` v2: sample ``x [1, H, W, C]`` at ``m [1, 4, 4]`` applied to the
    output pixel grid (pixel centres), zero outside; -> ``[1, oh, ow, C]``."""
    oh, ow = int(opts["output_height"]), int(opts["output_width"])
    H, W = x.shape[1], x.shape[2]
    m = m.reshape(4, 4).astype(np.float32)
    xr, yr = m[0].copy(), m[1].copy()
    xr[3] += xr[0] * 0.5 + xr[1] * 0.5 - 0.5
    yr[3] += yr[0] * 0.5 + yr[1] * 0.5 - 0.5
    gy, gx = np.mgrid[0:oh, 0:ow].astype(np.float32)
    tx = xr[0] * gx + xr[1] * gy + xr[3]
    ty = yr[0] * gx + yr[1] * gy + yr[3]
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    x0, y0 = np.floor(tx), np.floor(ty)
    fx, fy = (tx - x0)[..., None], (ty - y0)[..., None]
    x0, y0 = x0.astype(int), y0.astype(int)
    img = x[0]

    def read(yy, xx):
        ok = inside & (yy >= 0) & (xx >= 0) & (yy < H) & (xx < W)
        v = img[np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)]
        return np.where(ok[..., None], v, 0.0)

    upper = (1 - fx) * read(y0, x0) + fx * read(y0, x0 + 1)
    lower = (1 - fx) * read(y0 + 1, x0) + fx * read(y0 + 1, x0 + 1)
    out = fy * lower + (1 - fy) * upper
    out = np.where(inside[..., None], out, 0.0)
    return out[None].astype(np.float32)


def _transform_landmarks(lms: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``TransformLandmarks`` v2: ``lms [1, N, 2|3]`` through ``m [1, 4, 4]`` (x, y; z kept)."""
    m = m.reshape(4, 4).astype(np.float32)
    out = lms.astype(np.float32).copy()
    x, y = lms[..., 0], lms[..., 1]
    out[..., 0] = m[0, 0] * x + m[0, 1] * y + m[0, 3]
    out[..., 1] = m[1, 0] * x + m[1, 1] * y + m[1, 3]
    return out


def _conv2d_transpose_bias(x: np.ndarray, w: np.ndarray, bias: np.ndarray, opts: bytes | dict) -> np.ndarray:
    """``Convolution2DTransposeBias``: transposed convolution whose kernel equals its stride
    (non-overlapping; SAME and VALID padding then agree: what the selfie segmentation model's last
    layer uses) plus bias.
    ``x [1, H, W, Cin]``, ``w [Cout, kh, kw, Cin]`` -> ``[1, H*kh, W*kw, Cout]``."""
    _, H, W, _ = x.shape
    cout, kh, kw, _ = w.shape
    sh, sw = opts["stride_h"], opts["stride_w"]
    if (sh, sw) != (kh, kw) or opts["padding"] not in (1, 2):
        raise RuntimeError(f"Convolution2DTransposeBias: only kernel == stride is implemented, got "
                           f"kernel {(kh, kw)}, stride {(sh, sw)}, padding {opts['padding']}")
    y = np.einsum("hwc,okic->hkwio", x[0], w)        # [H, kh, W, kw, Cout]
    return (y.reshape(H * kh, W * kw, cout) + bias.reshape(-1))[None].astype(np.float32)


def _transpose_conv_options(raw: bytes) -> dict:
    """TfLiteTransposeConvParams as the custom operator stores them: int32 padding (1 SAME, 2 VALID),
    stride_w, stride_h."""
    padding, sw, sh = np.frombuffer(raw[:12], "<i4")
    return {"padding": int(padding), "stride_w": int(sw), "stride_h": int(sh)}


_CUSTOM = {
    b"Landmarks2TransformMatrix": lambda ins, o: _landmarks_to_transform_matrix(ins[0], o),
    b"TransformTensorBilinear": lambda ins, o: _transform_tensor_bilinear(ins[0], ins[1], o),
    b"TransformLandmarks": lambda ins, o: _transform_landmarks(ins[0], ins[1]),
    b"Convolution2DTransposeBias": lambda ins, o: _conv2d_transpose_bias(ins[0], ins[1], ins[2], o),
}


# ---- the model ------------------------------------------------------------------------------------

class TFLiteModel:
    """One TFLite model file, run on CPU by LiteRT (custom operators as above).

    ``model(x)`` takes the input ``[1, H, W, 3] float32`` and returns ``{output name: array}``
    (blocks; a few ms to ~30 ms per call on one core).
    """

    def __init__(self, path: str | Path, *, threads: int = 1):
        lit, _ = _litert()
        self.path = Path(path)
        self._threads = threads
        plan = _plan(str(self.path.resolve()))
        self.input_shape, self.output_names = plan.input_shape, plan.output_names
        self.output_shapes = plan.output_shapes
        self._names, self._in, self._out_ids, self._consts = plan.names, plan.in_id, plan.out_ids, plan.consts
        self._stages = [("graph", _interpreter(lit, st[1], threads), st[2], st[3]) if st[0] == "graph" else st
                        for st in plan.stages]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, np.float32)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"{self.path.name}: input must be {self.input_shape}, got {x.shape}")
        vals: dict[int, np.ndarray] = {**self._consts, self._in: x}
        for st in self._stages:
            if st[0] == "graph":
                (it, idx), ins, outs = st[1], st[2], st[3]
                for name, t in ins.items():
                    it.set_tensor(idx[name], vals[t])
                it.invoke()
                for t in outs:
                    vals[t] = it.get_tensor(idx[self._names[t]]).copy()
            else:
                _, code, ins, outs, opts = st
                vals[outs[0]] = _CUSTOM[code]([vals[t] for t in ins], opts)
        return {n: vals[i] for n, i in zip(self.output_names, self._out_ids)}


def _interpreter(lit, data: bytes, threads: int = 1, xnnpack: bool = True):
    kw = {} if xnnpack else {
        "experimental_op_resolver_type": lit.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    it = lit.Interpreter(model_content=data, num_threads=threads, **kw)
    it.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in it.get_input_details()}
    by_name.update({d["name"]: d["index"] for d in it.get_output_details()})
    return it, by_name


def _pack(model, schema) -> bytes:
    import flatbuffers
    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@lru_cache(maxsize=16)
def _plan(path: str) -> SimpleNamespace:
    """How to run the model at ``path``: its stages (builtin-only flatbuffers and custom operators)
    and constants; cached per process, so further detectors only create interpreters."""
    lit, schema = _litert()
    buf = Path(path).read_bytes()
    plan = SimpleNamespace(path=Path(path))
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    g = model.subgraphs[0]
    names = [t.name.decode() for t in g.tensors]
    plan.input_shape = tuple(int(v) for v in g.tensors[g.inputs[0]].shape)
    plan.output_names = [names[i] for i in g.outputs]
    plan.output_shapes = {names[i]: tuple(int(v) for v in g.tensors[i].shape) for i in g.outputs}

    def opcode(op):
        oc = model.operatorCodes[op.opcodeIndex]
        return max(oc.builtinCode, oc.deprecatedBuiltinCode), oc.customCode

    custom = [i for i, op in enumerate(g.operators) if opcode(op)[0] == schema.BuiltinOperator.CUSTOM]
    plan.names, plan.in_id, plan.out_ids, plan.consts = names, int(g.inputs[0]), [int(t) for t in g.outputs], {}
    if not custom:
        plan.stages = [("graph", buf, {names[g.inputs[0]]: int(g.inputs[0])}, [int(t) for t in g.outputs])]
        return plan
    from flatbuffers import flexbuffers  # a dependency of ai-edge-litert

    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(g.operators):
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(int(t), []).append(i)
    const = {i for i, t in enumerate(g.tensors) if model.buffers[t.buffer].data is not None
             and len(model.buffers[t.buffer].data) > 0}
    # operators on constants only (the fp16 weights' DEQUANTIZE): every stage that needs their
    # outputs runs them itself, so XNNPACK still sees static weights
    all_ops = list(g.operators)
    producer = {int(t): i for i, op in enumerate(all_ops) for t in op.outputs}
    static_ops: set[int] = set()
    static = set(const)
    for i, op in enumerate(g.operators):
        if i not in custom and all(t < 0 or t in static for t in op.inputs):
            static_ops.add(i)
            static.update(int(t) for t in op.outputs)

    def with_static(ops: list[int]) -> list[int]:
        need, stack = set(ops), [t for i in ops for t in all_ops[i].inputs if t in static and t not in weights]
        while stack:
            j = producer[int(stack.pop())]
            if j not in need:
                need.add(j)
                stack.extend(t for t in all_ops[j].inputs if t in static and t not in weights)
        return sorted(need)

    weights = const
    available = set(int(i) for i in g.inputs) | static
    todo = [i for i in range(len(g.operators)) if i not in static_ops]
    graph_inputs, graph_outputs = list(g.inputs), list(g.outputs)
    stages = []
    while todo:
        part = []
        produced: set[int] = set()
        for i in todo:
            op = all_ops[i]
            if i in custom:
                continue
            if all(t < 0 or t in available or t in produced for t in op.inputs):
                part.append(i)
                produced.update(int(t) for t in op.outputs)
        if part:
            later = set(todo) - set(part)
            ins = sorted({int(t) for i in part for t in all_ops[i].inputs
                          if t >= 0 and t not in static and t not in produced})
            outs = sorted({t for t in produced
                           if t in graph_outputs or any(c in later for c in consumers.get(t, []))})
            g.operators = [all_ops[i] for i in with_static(part)]
            g.inputs, g.outputs = ins, outs
            stages.append(("graph", _pack(model, schema), {names[t]: t for t in ins}, outs))
            available |= produced
            todo = [i for i in todo if i not in part]
        ready = [i for i in todo if i in custom
                 and all(t < 0 or t in available for t in all_ops[i].inputs)]
        if not ready and not part:
            raise RuntimeError(f"{plan.path.name}: cannot order its operators")
        for i in ready:
            op = all_ops[i]
            code = opcode(op)[1]
            if code not in _CUSTOM:
                raise RuntimeError(f"{plan.path.name}: unknown custom operator {code!r}")
            raw = bytes(op.customOptions) if op.customOptions is not None else b""
            if code == b"Convolution2DTransposeBias":
                opts = _transpose_conv_options(raw)
            else:
                opts = flexbuffers.Loads(raw) if raw else {}
            stages.append(("custom", code, [int(t) for t in op.inputs], [int(t) for t in op.outputs], opts))
            available |= {int(t) for t in op.outputs}
        todo = [i for i in todo if i not in ready]
    # weights that custom operators read (the transposed convolution's kernel and bias): computed
    # once by a stage of their DEQUANTIZE operators, or read from the buffer when stored as is
    consts: dict[int, np.ndarray] = {}
    want = sorted({int(t) for i in custom for t in all_ops[i].inputs if t >= 0 and t in static})
    derived = [t for t in want if t not in weights]
    for t in want:
        if t in weights:
            tt = g.tensors[t]
            dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32}[tt.type]
            consts[t] = np.frombuffer(bytes(model.buffers[tt.buffer].data), dtype).reshape(tt.shape).copy()
    if derived:
        g.operators = [all_ops[i] for i in with_static([producer[t] for t in derived])]
        g.inputs, g.outputs = [], derived
        it, idx = _interpreter(lit, _pack(model, schema), xnnpack=False)
        it.invoke()
        for t in derived:
            consts[t] = it.get_tensor(idx[names[t]]).copy()
    for v in consts.values():
        v.flags.writeable = False
    g.operators, g.inputs, g.outputs = all_ops, graph_inputs, graph_outputs
    plan.stages, plan.consts = stages, consts
    log.debug("%s: %d stages (%d custom operators)", plan.path.name, len(stages), len(custom))
    return plan
