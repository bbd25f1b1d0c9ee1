"""GridMask image augmentation (Chen et al. 2020), as BEVFormer applies it to camera images."""
import torch
from torch import Tensor, nn

from mmdet.registry import MODELS


@MODELS.register_module()
class GridMask(nn.Module):
    """Zero a regular grid of squares in each image, in training only.

    For an image of height H, a period ``d`` is drawn from ``[2, H)`` and a random
    offset per axis; within every ``d x d`` cell the square where neither the row nor the
    column falls in the first ``round(d * ratio)`` positions of the period is zeroed
    (BEVFormer's ``mode=1``: about (1 - ratio)^2 of the image). Unlike the original, every
    image gets its own grid, so samples in a batch are augmented independently.

    Args:
        ratio (float): kept fraction of each period along each axis. Defaults to 0.5.
        prob (float): probability that an image is masked at all. Defaults to 0.7.
    """

    def __init__(self, ratio: float = 0.5, prob: float = 0.7) -> None:
        super().__init__()
        if not 0.0 < ratio < 1.0:
            raise ValueError(f'GridMask ratio must be in (0, 1), got {ratio}')
        self.ratio = ratio
        self.prob = prob

    def make_masks(self, num: int, height: int, width: int, device: torch.device) -> Tensor:
        """Random keep-masks.

        Returns:
            Tensor: (num, height, width) float, 1 = keep, 0 = drop.
        """
        d = torch.randint(2, max(height, 3), (num, 1, 1), device=device)
        keep_len = (d.float() * self.ratio + 0.5).long().clamp(min=1)
        keep_len = torch.minimum(keep_len, d - 1)
        off_y = (torch.rand(num, 1, 1, device=device) * d).long()
        off_x = (torch.rand(num, 1, 1, device=device) * d).long()
        rows = torch.arange(height, device=device).view(1, -1, 1)
        cols = torch.arange(width, device=device).view(1, 1, -1)
        drop = (((rows - off_y) % d) >= keep_len) & (((cols - off_x) % d) >= keep_len)
        masked = torch.rand(num, 1, 1, device=device) < self.prob
        return (~(drop & masked)).float()

    def forward(self, imgs: Tensor) -> Tensor:
        """
        Args:
            imgs (Tensor): (num_imgs, C, H, W).

        Returns:
            Tensor: same shape; unchanged in eval mode.
        """
        if not self.training:
            return imgs
        num, _, height, width = imgs.shape
        mask = self.make_masks(num, height, width, imgs.device).to(imgs.dtype)
        return imgs * mask[:, None]
