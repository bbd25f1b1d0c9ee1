"""Random clustered boxes for the NMS tests (ops/nms.py here; bevformer's batched_nms_3d in
tests/test_bevformer/test_models/test_heads/test_bev_nms.py)."""
import torch


def random_boxes(n: int, seed: int = 0):
    """Clustered axis-aligned boxes (many overlaps) and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 5 + 1, 2, generator=g) * 40
    ctr = centres[torch.arange(n) % centres.shape[0]] + torch.randn(n, 2, generator=g) * 2
    wh = torch.rand(n, 2, generator=g) * 8 + 4
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    scores = torch.randperm(n, generator=g).float() / n * 0.9 + 0.05
    return boxes, scores


def to_rotated(boxes: torch.Tensor, yaw: float = 0.0) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h, yaw)."""
    ctr = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = boxes[:, 2:] - boxes[:, :2]
    return torch.cat([ctr, wh, torch.full_like(ctr[:, :1], yaw)], dim=1)
