"""BEVDataPreprocessor (models/data_preprocessors): collated video items (pseudo and default
collate), normalisation and padding, shape and geometry checks that name the sample."""
import pytest
import torch
from mmengine.dataset import pseudo_collate

from projects.bevformer.models.data_preprocessors import BEVDataPreprocessor
from tests.test_bevformer.bev_data_helpers import synth_dataset as _dataset


def test_collate_and_preprocess_bs2(synth):
    ds = _dataset(synth, queue_sampling='consecutive')
    items = [ds[3], ds[8]]
    batch = pseudo_collate(items)
    pre = BEVDataPreprocessor()
    out = pre(batch)
    img = out['inputs']['img']
    assert img.shape == (2, 3, 6, 3, 32, 32) and img.dtype == torch.float32  # 24 -> 32
    want = dict(lidar2img=((2, 3, 6, 4, 4), torch.float64), lidar2global=((2, 3, 4, 4),
                torch.float64), can_bus=((2, 3, 18), torch.float64), img_shape=((2, 3, 2),
                torch.long), prev_exists=((2, 3), torch.bool))
    for key, (shape, dtype) in want.items():
        assert out['inputs'][key].shape == shape and out['inputs'][key].dtype == dtype, key
    for b, item in enumerate(items):
        single = pre(pseudo_collate([item]))['inputs']
        for key in single:
            torch.testing.assert_close(out['inputs'][key][b:b + 1], single[key])
        assert out['data_samples'][b].token == item['data_samples'].token
    # default_collate (stacked) input gives the same
    stacked = dict(inputs={k: torch.stack([i['inputs'][k] for i in items])
                           for k in items[0]['inputs']},
                   data_samples=[i['data_samples'] for i in items])
    for key, value in pre(stacked)['inputs'].items():
        torch.testing.assert_close(value, out['inputs'][key])


def _geometry(t=2, n=6):
    return dict(lidar2img=torch.eye(4).repeat(t, n, 1, 1), lidar2global=torch.eye(4).repeat(t, 1, 1),
                can_bus=torch.zeros(t, 18), img_shape=torch.tensor([[8, 8]] * t),
                prev_exists=torch.tensor([False] + [True] * (t - 1)))


def test_preprocessor_normalizes_pads_and_checks_shapes(synth):
    pre = BEVDataPreprocessor(mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 4.0], bgr_to_rgb=True,
                              pad_size_divisor=8)
    x = torch.rand(2, 6, 3, 8, 8) * 255
    y = torch.rand(2, 6, 3, 5, 11) * 255  # another size: padded to the batch's 8 x 16
    geo = _geometry()
    batch = {k: [geo[k], geo[k]] for k in geo}
    out = pre(dict(inputs=dict(img=[x, y], **batch)))['inputs']['img']
    assert out.shape == (2, 2, 6, 3, 8, 16)

    def norm(v):
        return (v.flip(2) - torch.tensor([1.0, 2, 3]).view(3, 1, 1)) / torch.tensor(
            [2.0, 2, 4]).view(3, 1, 1)

    torch.testing.assert_close(out[0, ..., :8], norm(x))
    torch.testing.assert_close(out[1, ..., :5, :11], norm(y))
    assert out[0, ..., 8:].abs().max() == 0 and out[1, ..., 5:, :].abs().max() == 0  # zeros

    plain = BEVDataPreprocessor()
    with pytest.raises(ValueError, match=r'item 1 has \(T, N_cam\) \(2, 5\)'):
        plain(dict(inputs=dict(img=[x, torch.rand(2, 5, 3, 8, 8)], **batch)))
    with pytest.raises(ValueError, match=r'item 0 img must be \(T, N_cam, 3, H, W\)'):
        plain(dict(inputs=dict(img=[torch.rand(6, 3, 8, 8)])))
    with pytest.raises(KeyError, match="key 'img'"):
        plain(dict(inputs=torch.rand(1, 2, 6, 3, 8, 8)))
    with pytest.raises(KeyError, match=r'has no .{1,2}can_bus'):
        plain(dict(inputs=dict(img=[x], **{k: [v] for k, v in geo.items() if k != 'can_bus'})))
    ds = _dataset(synth, queue_sampling='consecutive')
    item = ds[5]
    inputs = {k: [v] for k, v in item['inputs'].items()}
    with pytest.raises(ValueError, match=r'1 images but 2 data_samples'):
        plain(dict(inputs=inputs, data_samples=[item['data_samples']] * 2))
    wrong = dict(inputs, lidar2img=[torch.zeros(3, 5, 4, 4)])
    with pytest.raises(ValueError, match=r's1f2\) lidar2img is \(3, 5, 4, 4\), expected '
                                         r'\(3, 6, 4, 4\)'):
        plain(dict(inputs=wrong, data_samples=[item['data_samples']]))
    nan = item['inputs']['can_bus'].clone()
    nan[1, 0] = float('nan')
    with pytest.raises(ValueError, match=r'sample s1f2\) can_bus has non-finite values'):
        plain(dict(inputs=dict(inputs, can_bus=[nan]), data_samples=[item['data_samples']]))
