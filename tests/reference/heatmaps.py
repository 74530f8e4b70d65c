import torch


def pixel_centers(size: int, dtype=torch.float32, device="cpu"):
    """Normalized coordinates of pixel centres (align_corners=False): (2 j + 1) / size - 1."""
    return (2 * torch.arange(size, dtype=torch.float64, device=device) + 1) / size - 1


def heatmaps_ref(kp, height, width, sigma, weights=None):
    """exp(-((x - kx)^2 + (y - ky)^2) / (2 sigma^2)) * w, vectorized, in float64 then cast."""
    kp = kp.double()
    y = pixel_centers(height, device=kp.device).view(1, 1, height, 1)
    x = pixel_centers(width, device=kp.device).view(1, 1, 1, width)
    d2 = (x - kp[..., 0, None, None]) ** 2 + (y - kp[..., 1, None, None]) ** 2  # N,K,H,W
    h = torch.exp(-d2 / (2 * sigma**2))
    if weights is not None:
        h = h * weights.double()[..., None, None]
    return h.float()


def sparse_motion_ref(kp_source, kp_driving, height, width, sigma, weights=None):
    """FOMM's sparse motion: heat(driving) - heat(source) and identity - kp_driving + kp_source,
    with a background channel 0 (zeros / identity)."""
    n, k, _ = kp_source.shape
    hd = heatmaps_ref(kp_driving, height, width, sigma, weights) - heatmaps_ref(kp_source, height, width, sigma, weights)
    diff = torch.cat([torch.zeros(n, 1, height, width, device=hd.device), hd], dim=1)  # N,K+1,H,W
    yy, xx = torch.meshgrid(pixel_centers(height, device=kp_source.device),
                            pixel_centers(width, device=kp_source.device), indexing="ij")
    identity = torch.stack([xx, yy], dim=-1).view(1, 1, height, width, 2)  # 1,1,H,W,2
    shift = (kp_source.double() - kp_driving.double()).view(n, k, 1, 1, 2)
    grids = torch.cat([identity.expand(n, 1, height, width, 2), identity + shift], dim=1)  # N,K+1,H,W,2
    return diff, grids.float()
