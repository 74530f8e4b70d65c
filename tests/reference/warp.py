import torch
import torch.nn.functional as F


def warp_ref(features, grid, *, padding="zeros", align_corners=False, mask=None):
    """torch grid_sample (bilinear) times the mask: the definition chatanyone.ops.warp must match."""
    out = F.grid_sample(features, grid, mode="bilinear", padding_mode=padding, align_corners=align_corners)
    if mask is not None:
        n = out.shape[0]
        out = out * mask.reshape(n, 1, *out.shape[2:])  # [N,1,(Do,)Ho,Wo]
    return out
