"""Reference points of the deformable encoder and decoder (models/layers/reference_points.py;
refine_reference_points in deformable_decoder.py) against mmdet."""
import torch
from mmdet.models.layers.transformer.deformable_detr_layers import \
    DeformableDetrTransformerEncoder

from projects.deformable_detr.models.layers import (deformable_sampling_locations,
                                                    encoder_reference_points,
                                                    refine_reference_points)

SPATIAL_SHAPES = torch.tensor([[6, 8], [3, 4], [2, 2]])


def test_sampling_locations_box_reference():
    """With a box reference, offset (num_points, 0) of the box half-width reaches its edge."""
    ref = torch.tensor([0.5, 0.5, 0.4, 0.2]).view(1, 1, 1, 4)
    offsets = torch.zeros(1, 1, 1, 1, 2, 2)
    offsets[..., 0, 0] = 2.0  # num_points = 2 -> the right edge
    offsets[..., 1, 1] = -2.0  # the top edge
    loc = deformable_sampling_locations(ref, offsets, torch.tensor([[10, 10]]))
    torch.testing.assert_close(loc[0, 0, 0, 0], torch.tensor([[0.7, 0.5], [0.5, 0.4]]))


def test_encoder_reference_points_match_mmdet():
    valid_ratios = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]],
                                 [[0.5, 0.75], [0.6, 0.8], [0.5, 1.0]]])
    ours = encoder_reference_points(SPATIAL_SHAPES, valid_ratios)
    ref = DeformableDetrTransformerEncoder.get_encoder_reference_points(
        SPATIAL_SHAPES, valid_ratios, 'cpu')
    assert ours.shape == (2, 48 + 12 + 4, 3, 2)
    torch.testing.assert_close(ours, ref)


def test_refine_reference_points():
    points = torch.tensor([[[0.25, 0.5]]])
    delta = torch.tensor([[[0.0, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(refine_reference_points(points, delta),
                               torch.tensor([[[0.25, 0.5, 0.5, 0.5]]]))
    boxes = torch.tensor([[[0.25, 0.5, 0.1, 0.2]]])
    torch.testing.assert_close(refine_reference_points(boxes, torch.zeros(1, 1, 4)), boxes)
