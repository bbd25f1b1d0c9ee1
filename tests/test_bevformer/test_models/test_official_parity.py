"""Parity with the original BEVFormer v1 (tests/data/bevformer_reference/tiny_small).

The fixture holds an official-layout checkpoint (random weights, tiny config with small widths),
the exact network inputs of a two-frame sequence with ego motion, and what the original code
computed from them: B_t, every decoder layer's logits and box codes, the decoded boxes, and a
training step (losses, Hungarian assignments, targets, gradients). Here the checkpoint goes
through our converter into ``configs/bevformer/official/bevformer_tiny_small_parity.py`` (legacy
mode) and every output is compared; the default (exact) mode is compared too.

Errors are measured as ``max |ours - reference| / max |reference|`` per tensor.
"""
import dataclasses
import math
import os.path as osp
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import projects.bevformer  # noqa: F401
from mmdet.registry import MODELS
from projects.bevformer.geometry.box_coding import code_from_mmdet3d_v017, encode_bboxes_3d
from projects.bevformer.geometry.boxes import boxes_from_mmdet3d_v017, matrix_to_quaternion
from projects.bevformer.models.official import (convert_official_state_dict, is_box_code_layer,
                                                official_key_to_ours)
from projects.bevformer.structures import Det3DDataSample
from tests.shared_data import BEVFORMER_REFERENCE_DIR as FIXTURE_DIR
from tests.shared_data import REPO_ROOT as REPO

PARITY_CONFIG = osp.join(REPO, 'configs/bevformer/official/bevformer_tiny_small_parity.py')
# Aim 1e-5; never accept worse than 1e-3 of a tensor's max (the bound). The limits
# below sit just above what was measured (see the closing note of the fidelity issue).
FWD_TOL = 1e-5
GRAD_TOL = 5e-5


def rel_err(ours, ref) -> float:
    ours = torch.as_tensor(ours, dtype=torch.float64)
    ref = torch.as_tensor(ref, dtype=torch.float64)
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    scale = ref.abs().max().clamp(min=1e-12)
    return float((ours - ref).abs().max() / scale)


def assert_close(ours, ref, name: str, tol: float = FWD_TOL) -> None:
    err = rel_err(ours, ref)
    assert err < tol, f'{name}: relative error {err:.3g} >= {tol:g}'


# ----------------------------------------------------------------------------- fixture
@pytest.fixture(scope='module')
def ref():
    load = lambda name: torch.load(osp.join(FIXTURE_DIR, name), weights_only=True)  # noqa: E731
    return dict(ckpt=load('checkpoint.pth'), inp=load('inputs.pth'), out=load('outputs.pth'))


def network_input(inp: dict, f: int) -> torch.Tensor:
    """(1, 6, 3, Hp, Wp) float32, rebuilt bit-exactly as the fixture README documents."""
    raw = inp['raw_bgr_uint8'][f].long()
    hp, wp = inp['padded_hw']
    img = torch.zeros(1, raw.shape[0], 3, hp, wp)
    for c in range(3):
        src = inp['norm_lut_src_channel'][c]
        img[0, :, c, :raw.shape[1], :raw.shape[2]] = inp['norm_lut'][c][raw[..., src]]
    return img


def frame_meta(inp: dict, f: int, can_bus=None) -> dict:
    """Our metainfo for frame f (docs/data_format.md) from the original's img_metas."""
    metas = inp['img_metas_pipeline'][f]
    lidar2global = inp['ego2global'][f].double() @ torch.as_tensor(
        inp['rig']['lidar2ego']).double()
    return dict(
        token=f'frame{f}', scene_token=metas['scene_token'], frame_idx=f, prev_exists=f > 0,
        lidar2img=np.stack([np.asarray(m) for m in metas['lidar2img']]),
        lidar2global=lidar2global.numpy(),
        # The original's absolute can_bus (the inputs it saw, orientation slots included).
        can_bus=np.asarray(metas['can_bus'] if can_bus is None else can_bus, dtype=np.float64),
        # The original's img_shape is the padded shape (point_sampling divides by it).
        img_shape=tuple(inp['padded_hw']), pad_shape=tuple(inp['padded_hw']))


def sample(inp: dict, f: int) -> Det3DDataSample:
    ds = Det3DDataSample()
    ds.set_metainfo(frame_meta(inp, f))
    return ds


def model_inputs(imgs: List[torch.Tensor], metas: List[dict]) -> dict:
    """The model's inputs for one sample: frames oldest first (BEVDataPreprocessor's layout)."""
    geo = {key: torch.as_tensor(np.stack([np.asarray(m[key]) for m in metas]))[None]
           for key in ('lidar2img', 'lidar2global', 'can_bus', 'img_shape', 'prev_exists')}
    return dict(img=torch.stack(imgs, dim=1), **geo)


def cat_inputs(*inputs: dict) -> dict:
    return {k: torch.cat([i[k] for i in inputs]) for k in inputs[0]}


def build(ref, legacy: bool = True):
    init_default_scope('mmdet')
    cfg = Config.fromfile(PARITY_CONFIG)
    if not legacy:
        cfg.model.bev_encoder.legacy = None
        cfg.model.heads.det.legacy = None
    model = MODELS.build(cfg.model)
    state_dict, _ = convert_official_state_dict(ref['ckpt']['state_dict'])
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def run_sequence(model, inp) -> List[Dict]:
    """Frames 0 then 1 in video test mode (frame 1 uses the carried BEV of frame 0)."""
    model.reset_video_state()
    outs = []
    head = model.heads['det']
    with torch.no_grad():
        for f in range(2):
            bev = model.extract_bev(model_inputs([network_input(inp, f)], [frame_meta(inp, f)]),
                                    [sample(inp, f)])
            cls, bbox = head(bev)
            res = head.predict_by_feat(cls, bbox)[0]
            outs.append(dict(bev=bev, cls=cls, bbox=bbox, res=res))
    return outs


@pytest.fixture(scope='module')
def legacy_model(ref):
    return build(ref, legacy=True)


@pytest.fixture(scope='module')
def legacy_outs(ref, legacy_model):
    return run_sequence(legacy_model, ref['inp'])


# ----------------------------------------------------------------------------- conversion
def test_converted_checkpoint_loads_strictly_and_maps_every_key(ref):
    sd = ref['ckpt']['state_dict']
    converted, notes = convert_official_state_dict(sd)
    assert len(converted) == len(sd) - 1  # only the frozen code_weights is dropped
    assert any('code_weights' in n for n in notes)
    # level_embeds: 4 rows in the original, 1 feature level here.
    assert converted['bev_encoder.level_embeds'].shape == (1, 64)
    torch.testing.assert_close(converted['bev_encoder.level_embeds'],
                               sd['pts_bbox_head.transformer.level_embeds'][:1])
    # The box-code layer is re-expressed; applying the map twice gives the original back.
    key = 'pts_bbox_head.reg_branches.5.4.weight'
    ours = converted[official_key_to_ours(key)]
    assert is_box_code_layer(official_key_to_ours(key), ours)
    torch.testing.assert_close(code_from_mmdet3d_v017(ours.T).T, sd[key])
    build(ref)  # strict=True inside


def test_converter_names_unmapped_keys(ref):
    sd = dict(ref['ckpt']['state_dict'])
    sd['pts_bbox_head.transformer.mystery.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='mystery'):
        convert_official_state_dict(sd)


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize('f', [0, 1])
def test_legacy_bev_and_decoder_outputs_match_the_original(ref, legacy_outs, f):
    want, got = ref['out']['frames'][f], legacy_outs[f]
    assert_close(got['bev'], want['bev_embed'].permute(1, 0, 2), f'frame {f} B_t')
    assert_close(got['cls'], want['all_cls_scores'], f'frame {f} logits (all layers)')
    # Our box code is a signed permutation of the original's (geometry/box_coding.py).
    assert_close(code_from_mmdet3d_v017(got['bbox']), want['all_bbox_preds'],
                 f'frame {f} box codes (all layers)')


@pytest.mark.parametrize('f', [0, 1])
def test_legacy_decoded_boxes_match_the_original_as_devkit_boxes(ref, legacy_outs, f):
    want, res = ref['out']['frames'][f], legacy_outs[f]['res']
    nusc = want['nusc_lidar']
    ref_index = {(int(q), int(l)): i
                 for i, (q, l) in enumerate(zip(want['query_index'], want['labels_3d']))}
    ours_index = {(int(q), int(l)): i
                  for i, (q, l) in enumerate(zip(res.query_index, res.labels_3d))}
    # Near-equal scores may swap ranks at the top-300 boundary: compare the common pairs.
    common = sorted(set(ref_index) & set(ours_index))
    assert len(common) >= 295, len(common)
    ri = torch.tensor([ref_index[k] for k in common])
    oi = torch.tensor([ours_index[k] for k in common])
    boxes = res.bboxes_3d[oi].double()
    centre = torch.cat([boxes[:, :2], boxes[:, 2:3] + boxes[:, 5:6] / 2], dim=1)
    assert_close(centre, nusc['center'][ri], f'frame {f} box centres')
    assert_close(boxes[:, [4, 3, 5]], nusc['wlh'][ri], f'frame {f} box wlh')
    assert_close(res.scores_3d[oi], want['scores_3d'][ri], f'frame {f} scores')
    q = torch.as_tensor(nusc['orientation_wxyz'])[ri]
    ref_yaw = 2 * torch.atan2(q[:, 3], q[:, 0])  # rotation about z
    dyaw = torch.remainder(boxes[:, 6] - ref_yaw + math.pi, 2 * math.pi) - math.pi
    assert float(dyaw.abs().max()) < 1e-4, f'frame {f} yaw error {float(dyaw.abs().max())}'
    assert_close(boxes[:, 7:9], torch.as_tensor(nusc['velocity'])[ri][:, :2],
                 f'frame {f} velocity')


def test_legacy_rotation_picks_the_original_source_cells(ref):
    from projects.bevformer.geometry.ego_motion import rotate_bev_about_pixel
    index = torch.arange(2500, dtype=torch.float32) + 1  # 0 = zero fill
    angle = torch.tensor([ref['inp']['img_metas_at_head'][1]['can_bus'][-1]], dtype=torch.float64)
    rotated = rotate_bev_about_pixel(index[None, :, None], angle, (100, 100), 50, 50)
    got = rotated[0, :, 0].long() - 1
    want = ref['out']['frames'][1]['prev_bev_rot_src_index']
    assert torch.equal(got, want)
    assert int((got < 0).sum()) == 378  # 15.1 % of the cells become zero


def test_legacy_can_bus_equals_the_original_at_the_head(ref, legacy_model):
    """Our can_bus (true quaternion) -> make_can_bus in legacy mode == what the head saw."""
    inp = ref['inp']
    absolute = []
    for f in range(2):
        cb = np.asarray(inp['img_metas_pipeline'][f]['can_bus'], dtype=np.float64).copy()
        q = matrix_to_quaternion(inp['ego2global'][f][:3, :3].double().numpy())
        q = q * np.sign(q[0]) * np.sign(cb[3])  # the record's sign (only w is kept anyway)
        cb[3:7] = q
        absolute.append(cb)
    cur, prev = (torch.as_tensor(absolute[i])[None] for i in (1, 0))
    got = legacy_model.bev_encoder.make_can_bus(cur, prev, torch.tensor([True]))
    want = torch.as_tensor(np.asarray(inp['img_metas_at_head'][1]['can_bus']))
    torch.testing.assert_close(got[0], want, rtol=0, atol=1e-9)


def test_legacy_batch_of_two_equals_two_batches_of_one(ref, legacy_model):
    """Queue mode, bs = 2: [frame 0 -> frame 1] (as the original's obtain_history_bev) and
    [frame 1 -> frame 0] (other ego motion); each equals its own bs = 1 run, and the first
    equals the original's frame 1."""
    inp = ref['inp']
    img = [network_input(inp, f) for f in range(2)]
    m = [frame_meta(inp, f) for f in range(2)]
    seq_a = model_inputs(img, [dict(m[0], prev_exists=False), m[1]])
    seq_b = model_inputs(img[::-1], [dict(m[1], prev_exists=False), dict(m[0], prev_exists=True)])
    samples = [sample(inp, 1), sample(inp, 0)]
    with torch.no_grad():
        both = legacy_model.extract_bev(cat_inputs(seq_a, seq_b), samples)
        one_a = legacy_model.extract_bev(seq_a, samples[:1])
        one_b = legacy_model.extract_bev(seq_b, samples[1:])
    torch.testing.assert_close(both[:1], one_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[1:], one_b, rtol=1e-5, atol=1e-5)
    assert_close(one_a, ref['out']['frames'][1]['bev_embed'].permute(1, 0, 2),
                 'queue-mode frame 1 B_t')
    assert rel_err(one_b, one_a) > 0.1  # a different sequence gives a different B_t


def test_head_fix_variant_matches_the_repository_head(ref):
    """shift_current_queue=False reproduces the original repository head (ref_2d.clone())."""
    model = build(ref)
    model.bev_encoder.legacy = dataclasses.replace(model.bev_encoder.legacy,
                                                   shift_current_queue=False)
    outs = run_sequence(model, ref['inp'])
    want = ref['out']['variant_head_encoder']['frame1']
    assert_close(outs[1]['bev'], want['bev_embed'].permute(1, 0, 2), 'variant B_t')
    assert_close(outs[1]['cls'], want['all_cls_scores'], 'variant logits')


def test_default_mode_frame0_equal_frame1_differs(ref, legacy_outs):
    """Our exact mode: the same network on frame 0; on frame 1 the aligned history differs."""
    outs = run_sequence(build(ref, legacy=False), ref['inp'])
    want = ref['out']['frames']
    assert_close(outs[0]['bev'], want[0]['bev_embed'].permute(1, 0, 2), 'default frame 0 B_t')
    assert_close(outs[0]['cls'], want[0]['all_cls_scores'], 'default frame 0 logits')
    err = rel_err(outs[1]['bev'], want[1]['bev_embed'].permute(1, 0, 2))
    assert err > 0.05, err


# ----------------------------------------------------------------------------- training
def gt_instances(gt: dict) -> InstanceData:
    """The fixture's mmdet3d v0.17 ground truth in our box convention."""
    inst = InstanceData()
    inst.bboxes_3d = torch.as_tensor(boxes_from_mmdet3d_v017(gt['gt_bboxes_3d'].numpy()),
                                     dtype=torch.float32)
    inst.labels_3d = gt['gt_labels_3d']
    return inst


@pytest.fixture(scope='module')
def training_step(ref):
    """Frame 1 with gradients from the stored frame-0 BEV, model in eval mode (as recorded)."""
    model = build(ref)
    inp, out = ref['inp'], ref['out']
    # Carry frame 0's BEV exactly as video test mode does.
    model.reset_video_state()
    with torch.no_grad():
        model.extract_bev(model_inputs([network_input(inp, 0)], [frame_meta(inp, 0)]),
                          [sample(inp, 0)])
    model._prev['bev'] = out['frames'][0]['bev_embed'].permute(1, 0, 2).clone()
    ds = sample(inp, 1)
    ds.gt_instances_3d = gt_instances(inp['gt'])
    model.zero_grad()
    bev = model.extract_bev(model_inputs([network_input(inp, 1)], [frame_meta(inp, 1)]), [ds])
    head = model.heads['det']
    cls, bbox = head(bev)
    losses = head.loss_by_feat(cls, bbox, [ds.gt_instances_3d])
    total = sum(losses.values())
    total.backward()
    return dict(model=model, bev=bev.detach(), cls=cls.detach(), bbox=bbox.detach(),
                losses={k: v.detach() for k, v in losses.items()}, total=total.detach(), ds=ds)


def test_training_losses_match_the_original(ref, training_step):
    want = ref['out']['training']
    assert list(training_step['losses']) == list(want['loss'])  # same keys, same order
    for key, value in want['loss'].items():
        assert_close(training_step['losses'][key].reshape(()), value.reshape(()), key)
    assert_close(training_step['total'], want['loss_total'], 'loss_total')


def test_training_nan_velocity_zeroed_losses_match(ref, training_step):
    head = training_step['model'].heads['det']
    gt = gt_instances(ref['inp']['gt'])
    gt.bboxes_3d = torch.nan_to_num(gt.bboxes_3d)
    with torch.no_grad():
        losses = head.loss_by_feat(training_step['cls'], training_step['bbox'], [gt])
    for key, value in ref['out']['training']['loss_nan_velocity_zeroed'].items():
        assert_close(losses[key].reshape(()), value.reshape(()), f'zeroed {key}')


def test_training_assignment_and_targets_match_the_original(ref, training_step):
    want = ref['out']['training']
    head = training_step['model'].heads['det']
    gt = training_step['ds'].gt_instances_3d
    codes = encode_bboxes_3d(gt.bboxes_3d)
    for lid in range(6):
        t = head.get_targets(training_step['cls'][lid], training_step['bbox'][lid], [codes],
                             [gt.labels_3d])
        assert torch.equal(t.assigned_gt_inds[0], want['assigned_gt_inds'][lid]), lid
        assert t.num_pos == want['num_pos'][lid]
    last = want['last_layer']
    pos = last['pos_inds']
    assert torch.equal(t.labels[0], last['labels'])
    targets = code_from_mmdet3d_v017(t.bbox_targets[0, pos])
    finite = torch.isfinite(last['normalized_bbox_targets'])
    assert_close(targets[finite], last['normalized_bbox_targets'][finite], 'normalised targets')
    weights = code_from_mmdet3d_v017(t.bbox_weights[0, pos]).abs()
    rows = last['finite_target_rows'][pos].float()[:, None]
    torch.testing.assert_close(weights, last['bbox_weights'] * rows)


def _our_grad(model, official_name: str) -> torch.Tensor:
    name = official_key_to_ours(official_name)
    grad = dict(model.named_parameters())[name].grad
    assert grad is not None, name
    if is_box_code_layer(name, grad):
        grad = code_from_mmdet3d_v017(grad.T).T if grad.dim() == 2 else \
            code_from_mmdet3d_v017(grad)
    return grad


def test_training_gradients_match_the_original(ref, training_step):
    want = ref['out']['training']
    model = training_step['model']
    for name, value in want['grads'].items():
        grad = _our_grad(model, name)
        if name.endswith('level_embeds'):  # rows of levels that do not exist: no gradient
            assert float(value[1:].abs().max()) == 0
            value = value[:grad.shape[0]]
        assert_close(grad, value, f'grad {name}', GRAD_TOL)
    for name, rows in want['grad_rows'].items():
        grad = _our_grad(model, name).reshape(rows['row_norm'].shape[0], -1)
        assert_close(grad[rows['index']], rows['rows'], f'grad rows {name}', GRAD_TOL)
        assert_close(grad.double().norm(dim=1), rows['row_norm'], f'row norms {name}', GRAD_TOL)
    # Every parameter with a gradient in the original has one here, with the same norm.
    ours = {n: p for n, p in model.named_parameters() if p.grad is not None}
    mapped = {official_key_to_ours(n): v for n, v in want['grad_norms'].items()}
    assert set(mapped) == set(ours)
    norms = torch.tensor([float(ours[n].grad.double().norm()) for n in mapped])
    assert_close(norms, torch.tensor(list(mapped.values())), 'gradient norms', GRAD_TOL)
    total = math.sqrt(sum(float(p.grad.double().norm())**2 for p in ours.values()))
    assert abs(total - want['grad_total_norm']) / want['grad_total_norm'] < GRAD_TOL


def test_unknown_legacy_option_is_named():
    init_default_scope('mmdet')
    cfg = Config.fromfile(PARITY_CONFIG)
    cfg.model.bev_encoder.legacy = dict(rotate_centre=(100, 100))
    with pytest.raises(KeyError, match="rotate_centre.*known"):
        MODELS.build(cfg.model)
