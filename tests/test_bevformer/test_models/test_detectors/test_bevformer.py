"""The BEVFormer detector on a tiny model and a tiny synthetic dataroot:
B_t is batch-independent, uses the history, is the same whether the history comes from
a queue or is carried in video test mode; loss / predict / AMP work."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import projects.bevformer  # noqa: F401
from mmdet.registry import DATASETS, MODELS
from projects.bevformer.models.heads import BaseBEVHead
from tests.test_bevformer.tiny_bevformer import tiny_cfg


@pytest.fixture(scope='module')
def cfg(tiny_root):
    """The tiny BEVFormer on ``tiny_root`` (tests/conftest.py)."""
    init_default_scope('mmdet')
    return tiny_cfg(tiny_root)


def build_model(cfg: Config, seed: int = 0):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model


def batch_of(dataset, indices, model, training=False):
    data = pseudo_collate([dataset[i] for i in indices])
    return model.data_preprocessor(data, training)


def train_dataset(cfg, queue_length=3):
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.queue_length = queue_length
    ds_cfg.queue_sampling = 'consecutive'
    ds_cfg.filter_empty_gt = False
    return DATASETS.build(ds_cfg)


def test_bev_batch_of_two_equals_two_batches_of_one(cfg):
    model = build_model(cfg).eval()
    model.video_test_mode = False
    ds = train_dataset(cfg, queue_length=3)
    # Item 0 starts its scene (repeated frames, no history), item 3 has two real
    # predecessors: the batch mixes both cases and two different geometries.
    both = batch_of(ds, [0, 3], model)
    assert both['inputs']['img'].shape[:3] == (2, 3, 6)
    with torch.no_grad():
        bev_2 = model.extract_bev(both['inputs'], both['data_samples'])
        pred_2 = model.predict(both['inputs'], both['data_samples'])
        for b, idx in enumerate([0, 3]):
            one = batch_of(ds, [idx], model)
            bev_1 = model.extract_bev(one['inputs'], one['data_samples'])
            pred_1 = model.predict(one['inputs'], one['data_samples'])
            torch.testing.assert_close(bev_2[b:b + 1], bev_1, rtol=1e-4, atol=1e-5)
            p2, p1 = pred_2[b].pred_instances_3d, pred_1[0].pred_instances_3d
            torch.testing.assert_close(p2.scores_3d, p1.scores_3d, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(p2.bboxes_3d, p1.bboxes_3d, rtol=1e-4, atol=1e-4)
    assert bev_2.shape == (2, 8 * 8, 32)


def test_history_changes_bev(cfg):
    model = build_model(cfg).eval()
    model.video_test_mode = False
    with_hist = batch_of(train_dataset(cfg, queue_length=2), [3], model)
    without = batch_of(train_dataset(cfg, queue_length=1), [3], model)
    assert with_hist['data_samples'][0].metainfo['prev_exists']
    with torch.no_grad():
        bev_h = model.extract_bev(with_hist['inputs'], with_hist['data_samples'])
        bev_0 = model.extract_bev(without['inputs'], without['data_samples'])
    # The current images are the same: only the temporal self-attention's input differs.
    torch.testing.assert_close(with_hist['inputs']['img'][:, -1], without['inputs']['img'][:, -1])
    assert (bev_h - bev_0).abs().max() > 1e-3


def test_video_test_mode_carries_the_previous_bev(cfg):
    """Frames fed one by one in scene order give the B_t of a 2-frame queue, and a scene
    change resets the history."""
    model = build_model(cfg).eval()
    model.video_test_mode = True
    test_ds = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    frames = [test_ds[i] for i in range(len(test_ds))]
    scenes = [f['data_samples'].metainfo['scene_token'] for f in frames]
    assert len(set(scenes)) == 1 and len(frames) >= 3  # the val split: one scene
    with torch.no_grad():
        model.reset_video_state()
        carried = []
        for f in frames[:3]:
            data = model.data_preprocessor(pseudo_collate([f]), False)
            carried.append(model.extract_bev(data['inputs'], data['data_samples']))
        # The same third frame through a 2-frame queue (its predecessor encoded in-call).
        val_queue_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
        val_queue_cfg.update(queue_length=2, queue_sampling='consecutive', test_mode=False,
                             filter_empty_gt=False)
        val_queue = DATASETS.build(val_queue_cfg)
        q = batch_of(val_queue, [1], model)
        model.video_test_mode = False
        queued = model.extract_bev(q['inputs'], q['data_samples'])
        torch.testing.assert_close(carried[1], queued, rtol=1e-4, atol=1e-5)
        # A frame of another scene does not use the carried (val-scene) BEV.
        single = DATASETS.build(dict(copy.deepcopy(cfg.train_dataloader.dataset),
                                     queue_length=1, test_mode=True))
        first = batch_of(single, [1], model)
        assert first['data_samples'][0].metainfo['scene_token'] != scenes[0]
        model.video_test_mode = True
        after = model.extract_bev(first['inputs'], first['data_samples'])
        model.video_test_mode = False
        fresh = model.extract_bev(first['inputs'], first['data_samples'])
        torch.testing.assert_close(after, fresh)


def test_loss_and_backward_batch_2_queue_3(cfg):
    model = build_model(cfg).train()
    ds = train_dataset(cfg, queue_length=3)
    data = batch_of(ds, [2, 3], model, training=True)
    assert data['inputs']['img'].shape[:2] == (2, 3)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_cls', 'loss_bbox', 'd0.loss_cls', 'd0.loss_bbox', 'loss_heatmap'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    # The current frame's path trains the backbone, encoder and head (the queries come from
    # the BEV heatmap, as in the quickstart); the history frames are encoded without
    # gradients, so nothing else should be needed.
    for name in ('img_backbone.conv1.weight', 'bev_encoder.bev_embedding.weight',
                 'heads.det.query_init.heatmap_head.1.weight',
                 'heads.det.query_init.pos_embedding.0.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_img_channels_last_trains_the_same_model(cfg):
    """``img_channels_last=True`` changes only the memory order of the images: in float64
    (exact arithmetic up to 1e-12) the image features and every backbone / neck gradient
    equal the NCHW run's; the whole loss runs (float32, the default layout of the rest)."""
    ds = train_dataset(cfg, queue_length=2)
    runs = []
    for channels_last in (False, True):
        c = copy.deepcopy(cfg)
        c.model.img_channels_last = channels_last
        model = build_model(c).train().double()
        model.grid_mask = None
        data = batch_of(ds, [2, 3], model, training=True)
        imgs = data['inputs']['img'][:, -1].double()
        seen = []  # the memory order the backbone receives
        model.img_backbone.register_forward_pre_hook(
            lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)
                                        and not args[0].is_contiguous()))
        feats = model.extract_img_feat(imgs)
        assert seen == [channels_last]
        sum((f * torch.linspace(-1, 1, f.numel(), dtype=f.dtype).view_as(f)).sum()
            for f in feats).backward()
        runs.append(([f.detach() for f in feats],
                     {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (feats_a, grads_a), (feats_b, grads_b) = runs
    for a, b in zip(feats_a, feats_b):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    assert grads_a.keys() == grads_b.keys() and any(k.startswith('img_neck') for k in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-9, atol=1e-9,
                                   msg=name)
    c = copy.deepcopy(cfg)
    c.model.img_channels_last = True
    model = build_model(c).train()
    data = batch_of(ds, [2, 3], model, training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total) and model.img_backbone.conv1.weight.grad.abs().sum() > 0


def test_bf16_autocast_forward_on_cpu(cfg):
    model = build_model(cfg).train()
    data = batch_of(train_dataset(cfg, queue_length=2), [2], model, training=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total.float())
    total.backward()


def test_head_loss_weights_scale_losses(cfg):
    cfg2 = copy.deepcopy(cfg)
    cfg2.model.head_loss_weights = dict(det=0.5)
    ds = train_dataset(cfg, queue_length=1)
    m1, m2 = build_model(cfg, seed=1).eval(), build_model(cfg2, seed=1).eval()
    data = batch_of(ds, [1], m1)
    with torch.no_grad():
        l1 = m1.loss(data['inputs'], data['data_samples'])
        l2 = m2.loss(data['inputs'], data['data_samples'])
    torch.testing.assert_close(l2['loss_cls'], 0.5 * l1['loss_cls'])
    with pytest.raises(KeyError, match='unknown heads'):
        bad = copy.deepcopy(cfg)
        bad.model.head_loss_weights = dict(seg=1.0)
        MODELS.build(bad.model)


@MODELS.register_module(force=True)
class _MeanBEVHead(BaseBEVHead):
    """A minimal head for the contract test: mean of B_t as 'prediction' and 'loss'."""

    pred_field = 'pred_mean_bev'
    default_loss_prefix = 'mean.'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def loss(self, bev_embed, batch_data_samples):
        return dict(loss_mean=(bev_embed * self.scale).mean().abs())

    def predict(self, bev_embed, batch_data_samples):
        return list(bev_embed.mean(dim=(1, 2)))


def test_any_head_following_the_contract_plugs_in(cfg):
    cfg2 = copy.deepcopy(cfg)
    cfg2.model.heads['lanes'] = dict(type='_MeanBEVHead', loss_prefix='lanes.')
    model = build_model(cfg2).eval()
    model.video_test_mode = False
    data = batch_of(train_dataset(cfg, queue_length=1), [1, 2], model)
    with torch.no_grad():
        losses = model.loss(data['inputs'], data['data_samples'])
        samples = model.predict(data['inputs'], data['data_samples'])
    assert 'lanes.loss_mean' in losses and 'loss_cls' in losses
    assert all(s.pred_mean_bev.shape == () and 'pred_instances_3d' in s for s in samples)

    bad = copy.deepcopy(cfg)
    bad.model.heads['other'] = dict(type='_MeanBEVHead', loss_prefix='')
    with pytest.raises(ValueError, match="share the loss_prefix ''"):
        MODELS.build(bad.model)
    bad.model.heads['other'] = dict(type='LN', normalized_shape=4)
    with pytest.raises(TypeError, match="head 'other'.*BaseBEVHead"):
        MODELS.build(bad.model)


def test_heads_take_the_encoders_sizes(cfg):
    model = build_model(cfg)
    enc, det = model.bev_encoder, model.heads['det']
    assert (det.bev_h, det.bev_w, det.embed_dims) == (enc.bev_h, enc.bev_w, enc.embed_dims)
    assert det.pc_range.tolist() == pytest.approx(list(enc.pc_range))
    assert all(layer.embed_dims == enc.embed_dims for layer in det.decoder.layers)
    bad = copy.deepcopy(cfg)
    bad.model.heads.det.bev_h = enc.bev_h + 1
    with pytest.raises(ValueError, match=r'heads.det.bev_h = 9 differs from the BEV encoder'):
        MODELS.build(bad.model)


def test_bad_input_shape_is_named(cfg):
    model = build_model(cfg).eval()
    with pytest.raises(ValueError, match=r'\(B, T, N_cam, 3, H, W\)'):
        model.extract_bev(dict(img=torch.zeros(1, 6, 3, 32, 32)), [])


def test_missing_or_misshaped_geometry_is_named(cfg):
    model = build_model(cfg).eval()
    model.video_test_mode = False
    data = batch_of(train_dataset(cfg, queue_length=1), [0], model)
    inputs = dict(data['inputs'])
    del inputs['lidar2global']
    with pytest.raises(KeyError, match=r"inputs has no 'lidar2global'"):
        model.extract_bev(inputs, data['data_samples'])
    inputs = dict(data['inputs'], can_bus=data['inputs']['can_bus'][..., :17])
    with pytest.raises(ValueError, match=r"inputs\['can_bus'\] must be \(1, 1, 18\)"):
        model.extract_bev(inputs, data['data_samples'])
