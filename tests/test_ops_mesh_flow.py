"""chatanyone.ops.mesh_flow against the numpy oracle (tests/reference/mesh_flow.py) and against
properties that need no oracle: a mesh covers every pixel exactly once, affine maps are
reproduced, overlaps resolve by depth then triangle index.

Tolerances: coverage and ownership are exact (integer arithmetic on both sides) except, with
depth, at pixels where two triangles' depths differ by less than 1e-5 (float32 kernel, float64
oracle). Grids: atol 1e-5 (float32 barycentrics of values in [-1.2, 1.2])."""
import zlib

import numpy as np
import pytest
import torch

from chatanyone import ops
from chatanyone._native import core
from reference import mesh_flow_ref, pixel_centers
from reference.devices import DEVICES

GRID_TOL = dict(atol=1e-5, rtol=1e-5)
SIZES = [(1, 1), (5, 7), (17, 31), (32, 23)]


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def soup(rng, v=30, t=40, spread=1.3):
    """Random triangles over random vertices: large, small, overlapping, both windings."""
    dst = rng.uniform(-spread, spread, (v, 2)).astype(np.float32)
    src = rng.uniform(-1.2, 1.2, (v, 2)).astype(np.float32)
    tris = rng.integers(0, v, (t, 3)).astype(np.int32)
    depth = rng.uniform(0, 1, v).astype(np.float32)
    return dst, src, tris, depth


def lattice(h, w, nx, ny, rng, flip_half=False):
    """A mesh of (nx+1) x (ny+1) vertices spanning beyond the image, interior vertices jittered by
    whole pixels so that they sit exactly on pixel centres: many edges pass exactly through
    pixel centres (horizontal, vertical and diagonal ones), which is where cracks would show."""
    cols = np.round(np.linspace(-2, w + 1, nx + 1)).astype(np.int64)
    rows = np.round(np.linspace(-2, h + 1, ny + 1)).astype(np.int64)
    jj, ii = np.meshgrid(cols, rows, indexing="xy")  # ny+1, nx+1 (pixel coordinates)
    inner = (slice(1, -1), slice(1, -1))
    jj[inner] += rng.integers(-1, 2, jj[inner].shape)
    ii[inner] += rng.integers(-1, 2, ii[inner].shape)
    x = (2 * jj + 1) / w - 1  # pixel centre -> normalized
    y = (2 * ii + 1) / h - 1
    dst = np.stack([x.ravel(), y.ravel()], -1).astype(np.float32)
    tris = []
    for r in range(ny):
        for c in range(nx):
            a, b = r * (nx + 1) + c, r * (nx + 1) + c + 1
            d, e = a + nx + 1, b + nx + 1
            if (r + c) % 2:
                tris += [[a, b, e], [a, e, d]]
            else:
                tris += [[a, b, d], [b, e, d]]
    tris = np.array(tris, np.int32)
    if flip_half:
        tris[::2] = tris[::2, ::-1]
    return dst, tris


def to(device, *arrays):
    return [None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]


def run(device, dst, src, tris, size, depth=None):
    grid, mask = ops.mesh_flow(*to(device, dst, src, tris), size, depth=to(device, depth)[0])
    assert grid.shape == (*size, 2) and mask.shape == tuple(size)
    assert grid.device.type == device and grid.dtype == torch.float32 and mask.dtype == torch.float32
    return grid.cpu().numpy(), mask.cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("with_depth", [False, True])
def test_matches_reference_on_random_soups(device, size, with_depth):
    for rep in range(3):
        dst, src, tris, depth = soup(_rng(size, with_depth, rep))
        depth = depth if with_depth else None
        grid, mask = run(device, dst, src, tris, size, depth)
        ref = mesh_flow_ref(dst, src, tris, size, depth)
        np.testing.assert_array_equal(mask, ref.mask)  # coverage is exact
        # with depth, where two depths nearly tie, float32 and float64 may pick either triangle;
        # without depth, ownership is exact
        near_tie = ref.gap < 1e-5 if with_depth else np.zeros(size, bool)
        bad = ~np.isclose(grid, ref.grid, **GRID_TOL).all(-1)
        assert not (bad & ~near_tie).any(), f"{int((bad & ~near_tie).sum())} pixels differ from the oracle"
        assert bad.sum() <= max(2, 0.01 * bad.size)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("flip_half", [False, True])
def test_mesh_covers_every_pixel_exactly_once(device, flip_half):
    """A lattice mesh spanning the image: every pixel covered, and rasterizing each triangle on its
    own shows that no pixel centre on a shared edge or vertex is counted twice or missed."""
    h, w = 29, 37
    dst, tris = lattice(h, w, 7, 5, _rng("lattice", flip_half), flip_half)
    src = dst[:, ::-1].copy()
    grid, mask = run(device, dst, src, tris, (h, w))
    assert mask.min() == 1.0
    count = np.zeros((h, w))
    owner_grid = np.zeros((h, w, 2), np.float32)
    for t in range(len(tris)):
        g1, m1 = run(device, dst, src, tris[t:t + 1], (h, w))
        count += m1
        owner_grid[m1 > 0] = g1[m1 > 0]
    np.testing.assert_array_equal(count, np.ones((h, w)))
    np.testing.assert_array_equal(grid, owner_grid)  # no overlap: each pixel's only triangle wins
    ref = mesh_flow_ref(dst, src, tris, (h, w))
    np.testing.assert_array_equal(ref.count, np.ones((h, w), np.int64))
    np.testing.assert_allclose(grid, ref.grid, **GRID_TOL)


@pytest.mark.parametrize("device", DEVICES)
def test_fan_around_a_pixel_centre(device):
    """Eight triangles meeting at one pixel centre, their spokes along rows, columns and diagonals
    through pixel centres: the centre and every spoke pixel are covered once."""
    h, w = 11, 11
    c = 5  # hub at pixel (5, 5)
    ring = [(0, 0), (0, 5), (0, 10), (5, 10), (10, 10), (10, 5), (10, 0), (5, 0)]  # (row, col)
    pix = np.array([(c, c)] + ring, np.float64)
    dst = np.stack([(2 * pix[:, 1] + 1) / w - 1, (2 * pix[:, 0] + 1) / h - 1], -1).astype(np.float32)
    tris = np.array([[0, 1 + k, 1 + (k + 1) % 8] for k in range(8)], np.int32)
    count = np.zeros((h, w))
    for t in range(8):
        count += run(device, dst, dst, tris[t:t + 1], (h, w))[1]
    assert count.max() == 1
    inner = slice(1, -1)  # the fan's outer right and bottom edges are not top/left: excluded
    assert count[c, inner].all() and count[inner, c].all() and np.diagonal(count)[inner].all()
    assert count[0, :-1].all() and count[:-1, 0].all() and not count[-1].any() and not count[:, -1].any()
    np.testing.assert_array_equal(count, run(device, dst, dst, tris, (h, w))[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [(24, 16), (33, 50)])
def test_affine_map_is_reproduced(device, size):
    """src = A dst + b: the grid at every covered pixel is A (pixel centre) + b, up to the 1/512
    pixel the vertices move when snapped."""
    h, w = size
    dst, tris = lattice(h, w, 5, 4, _rng("affine", size))
    a = np.array([[0.9, 0.2], [-0.15, 1.1]])
    b = np.array([0.05, -0.1])
    src = (dst.astype(np.float64) @ a.T + b).astype(np.float32)
    grid, mask = run(device, dst, src, tris, size)
    assert mask.all()
    yy, xx = np.meshgrid(pixel_centers(h).numpy(), pixel_centers(w).numpy(), indexing="ij")
    want = np.stack([xx, yy], -1) @ a.T + b
    snap_err = np.abs(a).sum(1).max() * 2 / (512 * min(h, w))
    np.testing.assert_allclose(grid, want, atol=snap_err + 1e-6, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_uncovered_pixels_are_identity(device):
    h, w = 9, 14
    cx, cy = pixel_centers(w).float().numpy(), pixel_centers(h).float().numpy()
    identity = np.stack(np.meshgrid(cx, cy, indexing="xy"), -1)
    for v, t in [(0, 0), (4, 0)]:
        grid, mask = run(device, np.zeros((v, 2), np.float32), np.zeros((v, 2), np.float32),
                         np.zeros((t, 3), np.int32), (h, w))
        np.testing.assert_array_equal(mask, 0)
        np.testing.assert_allclose(grid, identity, atol=1e-7, rtol=0)
    # a triangle in the top-left corner: the rest keeps the identity
    dst = np.array([[-1, -1], [0, -1], [-1, 0]], np.float32)
    grid, mask = run(device, dst, dst + 0.5, np.array([[0, 1, 2]], np.int32), (h, w))
    assert 0 < mask.sum() < h * w
    np.testing.assert_allclose(grid[mask == 0], identity[mask == 0], atol=1e-7, rtol=0)


def _two_triangles():
    """Two big triangles overlapping around the image centre, each with a constant source
    position (0.5, 0.5) and (-0.5, -0.5), so the grid says which one won."""
    dst = np.array([[-1.5, -1.5], [1.5, -1.2], [0, 1.5], [-1.5, 1.5], [1.5, 1.5], [0.2, -1.5]], np.float32)
    src = np.array([[0.5, 0.5]] * 3 + [[-0.5, -0.5]] * 3, np.float32)
    return dst, src, np.array([[0, 1, 2], [3, 4, 5]], np.int32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("depths,winner", [((0.2, 0.5), 0), ((0.5, 0.2), 1), ((0.3, 0.3), 1), (None, 1),
                                           ((-0.0, 0.0), 1), ((-1.0, 2.0), 0)])
def test_overlap_goes_to_the_nearest_then_larger_index(device, depths, winner):
    dst, src, tris = _two_triangles()
    depth = None if depths is None else np.repeat(np.array(depths, np.float32), 3)
    grid, mask = run(device, dst, src, tris, (16, 16), depth)
    alone = [run(device, dst, src, tris[t:t + 1], (16, 16))[1] > 0 for t in (0, 1)]
    both = alone[0] & alone[1]
    assert both.sum() > 20
    np.testing.assert_array_equal(grid[both], np.full((int(both.sum()), 2), src[3 * winner]))
    np.testing.assert_array_equal(mask, (alone[0] | alone[1]).astype(np.float32))


@pytest.mark.parametrize("device", DEVICES)
def test_interpolated_depth_decides_per_pixel(device):
    """Two triangles crossing in depth (one tilts from near to far): each wins on its own side."""
    dst = np.array([[-1.2, -1.2], [1.2, -1.2], [-1.2, 1.2], [1.2, 1.2]], np.float32)
    src = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [-0.5, -0.5], [-0.5, -0.5], [-0.5, -0.5]], np.float32)
    verts = np.concatenate([dst[[0, 1, 3]], dst[[0, 1, 3]]])  # the same triangle twice
    depth = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 0.5], np.float32)  # t0 nearer on the left, t1 on the right
    grid, mask = run(device, verts, src, np.array([[0, 1, 2], [3, 4, 5]], np.int32), (20, 20), depth)
    ref = mesh_flow_ref(verts, src, np.array([[0, 1, 2], [3, 4, 5]], np.int32), (20, 20), depth)
    covered = mask > 0
    t0 = covered & np.isclose(grid[..., 0], 0.5)
    t1 = covered & np.isclose(grid[..., 0], -0.5)
    assert t0.sum() > 20 and t1.sum() > 20 and (t0 | t1).sum() == covered.sum()
    decided = ref.gap > 1e-5
    np.testing.assert_array_equal(t1[decided & covered], ref.owner[decided & covered] == 1)


@pytest.mark.parametrize("device", DEVICES)
def test_degenerate_triangles_are_skipped(device):
    # 0, 3, 4, 5 lie on the diagonal x = y (so exactly collinear after snapping too); 6 is 5 moved
    # by one float32 step, which snaps back onto 5
    dst = np.array([[-0.9, -0.9], [0.9, -0.8], [0.0, 0.9], [1.5, 1.5], [-0.3, -0.3], [0.3, 0.3],
                    [0.3000001, 0.3]], np.float32)
    src = np.ones_like(dst) * 0.25
    degenerate = np.array([[0, 4, 5], [0, 3, 4], [1, 1, 2], [2, 2, 2], [5, 6, 5], [5, 6, 0]], np.int32)
    ref = mesh_flow_ref(dst, src, degenerate, (32, 32))
    assert ref.mask.sum() == 0  # the oracle agrees they are degenerate after snapping
    _, mask = run(device, dst, src, degenerate, (32, 32))
    assert mask.sum() == 0
    valid = np.array([[0, 1, 2]], np.int32)
    g1, m1 = run(device, dst, src, valid, (32, 32))
    g2, m2 = run(device, dst, src, np.concatenate([degenerate[:3], valid, degenerate[3:]]), (32, 32))
    assert m1.sum() > 100
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("device", DEVICES)
def test_warp_with_the_flow_moves_the_image(device):
    """The grid is a backward map for ops.warp: a mesh whose source is the destination shifted
    right by 4 pixels makes warp() move the image left by 4 pixels."""
    h, w = 24, 40
    dst, tris = lattice(h, w, 4, 3, _rng("warp"))
    src = dst.copy()
    src[:, 0] += 8 / w  # 4 pixels
    img = np.random.default_rng(0).random((1, 3, h, w)).astype(np.float32)
    g, m = ops.mesh_flow(*to(device, dst, src, tris), (h, w))
    out = ops.warp(torch.from_numpy(img).to(device), g[None], padding="border").cpu().numpy()
    np.testing.assert_allclose(out[..., :, : w - 4], img[..., :, 4:], atol=1e-4)


def test_deterministic_across_threads_and_calls():
    dst, src, tris, depth = soup(_rng("threads"), v=200, t=400)
    n0 = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        g1, m1 = ops.mesh_flow(dst, src, tris, (97, 61), depth=depth)
        ops.set_num_threads(3)
        g2, m2 = ops.mesh_flow(dst, src, tris, (97, 61), depth=depth)
        g3, m3 = ops.mesh_flow(dst, src, tris, (97, 61), depth=depth)
    finally:
        ops.set_num_threads(n0)
    assert isinstance(g1, np.ndarray) and isinstance(m1, np.ndarray)
    for g, m in ((g2, m2), (g3, m3)):
        np.testing.assert_array_equal(g, g1)
        np.testing.assert_array_equal(m, m1)


def test_direct_call_with_bad_indices_skips_them():
    """The binding does not trust its caller: out-of-range indices never read out of bounds."""
    dst = np.array([[-1, -1], [1, -1], [-1, 1]], np.float32)
    grid, mask = np.empty((8, 8, 2), np.float32), np.empty((8, 8), np.float32)
    core().mesh_flow(dst, dst, np.array([[0, 1, 5], [-3, 1, 2], [0, 1, 2]], np.int32), None, grid, mask)
    g_ok, m_ok = ops.mesh_flow(dst, dst, np.array([[0, 1, 2]], np.int32), (8, 8))
    np.testing.assert_array_equal(mask, m_ok)
    np.testing.assert_array_equal(grid, g_ok)


def _raises(exc, name, *a, **kw):
    with pytest.raises(exc) as e:
        ops.mesh_flow(*a, **kw)
    assert name in str(e.value), f"{name!r} not named in: {e.value}"


def test_bad_inputs_name_the_argument():
    v = np.zeros((4, 2), np.float32)
    v[1, 0] = 1
    v[2, 1] = 1
    t = np.array([[0, 1, 2]], np.int32)
    size = (8, 8)
    _raises(TypeError, "dst_vertices", v.astype(np.float64), v, t, size)
    _raises(TypeError, "src_vertices", v, v.astype(np.float16), t, size)
    _raises(TypeError, "triangles", v, v, t.astype(np.int64), size)
    _raises(TypeError, "triangles", v, v, t.astype(np.float32), size)
    _raises(TypeError, "dst_vertices", v.tolist(), v, t, size)
    _raises(ValueError, "dst_vertices", np.zeros((4, 3), np.float32), v, t, size)
    _raises(ValueError, "dst_vertices", np.zeros((8,), np.float32), v, t, size)
    _raises(ValueError, "src_vertices", v, v[:3].copy(), t, size)
    _raises(ValueError, "triangles", v, v, np.zeros((2, 2), np.int32), size)
    _raises(ValueError, "triangles", v, v, np.array([0, 1, 2], np.int32), size)
    _raises(ValueError, "triangles", v, v, np.array([[0, 1, 4]], np.int32), size)
    _raises(ValueError, "triangles", v, v, np.array([[0, -1, 2]], np.int32), size)
    _raises(ValueError, "triangles", v, v, np.zeros((2, 6), np.int32)[:, ::2], size)  # strided
    _raises(ValueError, "triangles", v, v, torch.from_numpy(t), size)  # numpy + torch mixed
    _raises(ValueError, "src_vertices", v, torch.from_numpy(v), t, size)
    _raises(TypeError, "size", v, v, t, 8)
    _raises(TypeError, "size", v, v, t, (8, 8, 1))
    _raises(TypeError, "size", v, v, t, (8, 8.0))
    _raises(ValueError, "size", v, v, t, (0, 8))
    _raises(ValueError, "size", v, v, t, (8, -2))
    _raises(ValueError, "size", v, v, t, (8, 2**21))
    _raises(TypeError, "depth", v, v, t, size, depth=np.zeros(4, np.float64))
    _raises(ValueError, "depth", v, v, t, size, depth=np.zeros(3, np.float32))
    _raises(ValueError, "depth", v, v, t, size, depth=np.array([0, np.nan, 0, 0], np.float32))
    _raises(ValueError, "depth", v, v, t, size, depth=np.array([0, np.inf, 0, 0], np.float32))
    for bad in (np.nan, np.inf, 1e7):
        w = v.copy()
        w[3, 1] = bad  # even on a vertex no triangle uses: it is an input error
        _raises(ValueError, "dst_vertices", w, v, t, size)
    _raises(TypeError, "dst_vertices", torch.zeros(4, 2, requires_grad=True), v, t, size)


def test_far_but_valid_vertices_are_accepted():
    """A coarse outer mesh may reach well beyond the image: up to 2**20 pixels is fine."""
    dst = np.array([[-1000, -1000], [1000, -1000], [0, 1000]], np.float32)
    grid, mask = ops.mesh_flow(dst, dst, np.array([[0, 1, 2]], np.int32), (16, 16))
    assert mask.all()
    np.testing.assert_allclose(grid, mesh_flow_ref(dst, dst, np.array([[0, 1, 2]]), (16, 16)).grid, atol=1e-4)
