"""GridMask: identity in eval, drops about (1 - ratio)^2 of each image in training, and
every image of a batch gets its own grid."""
import pytest
import torch

from projects.bevformer.models.utils import GridMask


def test_eval_is_identity():
    gm = GridMask(prob=1.0).eval()
    x = torch.rand(4, 3, 32, 48)
    assert torch.equal(gm(x), x)


def test_training_masks_a_grid_per_image():
    torch.manual_seed(0)
    gm = GridMask(ratio=0.5, prob=1.0).train()
    x = torch.ones(64, 3, 90, 160)
    out = gm(x)
    dropped = 1 - out[:, 0].mean(dim=(1, 2))  # fraction zeroed per image
    # Each period keeps round(d/2) of d rows/cols, so about a quarter of the image is dropped.
    assert 0.15 < dropped.mean() < 0.30
    assert (dropped > 0).all()
    # The same mask on every channel, a different grid for different images.
    assert torch.equal(out[:, 0], out[:, 2])
    assert len({tuple(m.flatten().tolist()) for m in out[:8, 0]}) == 8


def test_prob_zero_never_masks_and_bad_ratio():
    gm = GridMask(prob=0.0).train()
    x = torch.rand(3, 3, 20, 20)
    assert torch.equal(gm(x), x)
    with pytest.raises(ValueError, match='ratio'):
        GridMask(ratio=1.5)
