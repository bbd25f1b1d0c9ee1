"""Training you can watch: a short run of the tiny BEVFormer writes its curves and validation
pictures through the vis backends (LocalVisBackend; TensorBoard's too when it is installed),
and tools/analysis/analyze_logs.py plots and times such logs."""
import glob
import json
import os
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.visualization import Visualizer

from tests.test_tools.conftest import load_tool

try:
    import tensorboard  # noqa: F401
    HAS_TENSORBOARD = True
except ImportError:  # optional (requirements/optional.txt)
    HAS_TENSORBOARD = False


@pytest.fixture(scope='module')
def watched_run(tiny_config, tmp_path_factory):
    """2 iterations, a validation at iteration 2 with pictures of every 2nd val batch (4 val
    batches of one frame); returns the work dir."""
    work = str(tmp_path_factory.mktemp('watched'))
    cfg = Config.fromfile(tiny_config)
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.visualization.update(draw=True, interval=2)
    backends = [dict(type='LocalVisBackend')]
    if HAS_TENSORBOARD:
        backends.append(dict(type='TensorboardVisBackend'))
    cfg.visualizer.vis_backends = backends
    cfg.visualizer.name = 'watched_run_visualizer'
    path = osp.join(work, 'watched.py')
    cfg.dump(path)
    # as the fast_config_text fixture (function-scoped): plain config text, one thread
    pretty = Config.pretty_text
    Config.pretty_text = property(lambda self: self.text)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_tool('tools/train.py').main([path, '--work-dir', work])
    finally:
        Config.pretty_text = pretty
        torch.set_num_threads(threads)
    return work


def _records(work):
    (path, ) = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_short_run_writes_curves_and_pictures(watched_run):
    recs = _records(watched_run)
    train = [r for r in recs if 'iter' in r]
    assert [r['iter'] for r in train] == [1, 2]
    assert all({'loss', 'lr', 'time', 'loss_cls', 'loss_bbox'} <= set(r) for r in train)
    (val, ) = [r for r in recs if 'NuScenes/NDS' in r]
    assert val['step'] == 2  # logged at the iteration (log_metric_by_epoch=False), not epoch 0
    pictures = sorted(glob.glob(osp.join(watched_run, '*', 'vis_data', 'vis_image', '*.png')))
    assert len(pictures) == 2, pictures  # val batches 0 and 2
    assert all(osp.basename(p).startswith('val_') and p.endswith('_2.png') for p in pictures)
    img = cv2.imread(pictures[0])
    assert img.ndim == 3 and img.shape[1] > 1000 and img.std() > 10
    if HAS_TENSORBOARD:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        (events, ) = glob.glob(osp.join(watched_run, '*', 'vis_data', 'events.out.tfevents.*'))
        acc = EventAccumulator(events, size_guidance={'images': 0, 'scalars': 0})
        acc.Reload()
        assert {'loss', 'lr', 'NuScenes/NDS'} <= set(acc.Tags()['scalars'])
        assert len(acc.Tags()['images']) == 2


def test_plot_curve_of_the_run(watched_run, tmp_path):
    tool = load_tool('tools/analysis/analyze_logs.py')
    out = str(tmp_path / 'curves.png')
    fig = tool.main(['plot_curve', watched_run, '--keys', 'loss', 'NuScenes/NDS', '--out', out,
                     '--title', 'tiny'])
    assert osp.getsize(out) > 1000
    loss_ax, nds_ax = fig.axes
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [1, 2])
    np.testing.assert_array_equal(nds_ax.lines[0].get_xdata(), [2])
    assert nds_ax.get_ylabel() == 'NuScenes/NDS'
    with pytest.raises(KeyError, match=r"no key 'loss_typo'.*'loss'"):
        tool.main(['plot_curve', watched_run, '--keys', 'loss_typo', '--out', out])


def _write_log(path, records):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def test_cal_train_time_iteration_and_epoch_based(tmp_path, capsys):
    tool = load_tool('tools/analysis/analyze_logs.py')
    # iteration-based, logged every 10 iterations; a validation after iteration 20; resumed
    # from iteration 20 in a second run that logs 30 again (the newer record counts)
    work = tmp_path / 'work'
    _write_log(str(work / '20260101_000000' / 'vis_data' / 'scalars.json'), [
        dict(iter=10, step=10, time=5.0, loss=3.0, lr=1e-3),
        dict(iter=20, step=20, time=1.0, loss=2.0, lr=1e-3),
        {'NuScenes/NDS': 0.1, 'time': 9.9, 'step': 20},
        dict(iter=30, step=30, time=9.0, loss=9.0, lr=1e-3)])
    _write_log(str(work / '20260102_000000' / 'vis_data' / 'scalars.json'), [
        dict(iter=30, step=30, time=2.0, loss=1.5, lr=1e-3),
        dict(iter=40, step=40, time=3.0, loss=1.0, lr=1e-3)])
    (res, ) = tool.main(['cal_train_time', str(work), '--interval', '20'])
    # the first window (start-up) is left out: iterations 11-40 at 1, 2, 3 s
    assert res['avg'] == pytest.approx(2.0) and res['iters'] == 30
    assert res['slowest'] == (40, 3.0) and res['fastest'] == (20, 1.0)
    assert res['per_interval'] == {(1, 20): pytest.approx(10.0), (21, 40): pytest.approx(50.0)}
    printed = capsys.readouterr().out
    assert 'average iter time: 2.0000 s/iter' in printed and 'iters 21-40' in printed
    (res, ) = tool.main(['cal_train_time', str(work), '--include-outliers'])
    assert res['avg'] == pytest.approx((50 + 10 + 20 + 30) / 40)
    log = tool.ScalarLog(str(work))
    np.testing.assert_array_equal(log.series('loss')[1], [3.0, 2.0, 1.5, 1.0])
    np.testing.assert_array_equal(log.series('NuScenes/NDS')[0], [20])
    # epoch-based: time per epoch
    path = str(tmp_path / 'epochs.json')
    _write_log(path, [dict(epoch=1, iter=i, step=i, time=1.0) for i in (5, 10)]
               + [dict(epoch=2, iter=i, step=i, time=2.0) for i in (15, 20)])
    (res, ) = tool.main(['cal_train_time', path, '--include-outliers'])
    assert res['per_epoch'] == {1: pytest.approx(10.0), 2: pytest.approx(20.0)}
    with pytest.raises(FileNotFoundError, match='no such log'):
        tool.main(['cal_train_time', str(tmp_path / 'nothing_here')])
    with pytest.raises(FileNotFoundError, match='no vis_data/scalars.json'):
        tool.main(['cal_train_time', str(tmp_path)])


def test_hook_hands_test_pictures_to_the_visualizer(tiny_root, tmp_path):
    """Without --show-dir, test pictures go to every vis backend (here a LocalVisBackend)."""
    from mmengine.structures import InstanceData

    from projects.bevformer.constants import CAMERAS
    from projects.bevformer.structures import Det3DDataSample
    from projects.bevformer.visualization import BEVVisualizationHook
    info = __import__('mmengine').load(osp.join(tiny_root, 'nuscenes_infos_val.pkl'))
    frame = info['data_list'][0]
    sample = Det3DDataSample()
    cams = [frame['cams'][c] for c in CAMERAS]
    sample.set_metainfo(dict(
        token=frame['token'], img_paths=[osp.join(tiny_root, c['img_path']) for c in cams],
        img_shape=(cams[0]['height'], cams[0]['width']), cam_names=list(CAMERAS),
        lidar2img=np.stack([c['lidar2img'] for c in cams])))
    boxes = torch.tensor([i['bbox_3d'] + i['velocity'] for i in frame['instances']])
    sample.pred_instances_3d = InstanceData(bboxes_3d=boxes, scores_3d=torch.ones(len(boxes)),
                                            labels_3d=torch.zeros(len(boxes), dtype=torch.long))
    vis = Visualizer(name='hook_test_visualizer', save_dir=str(tmp_path),
                     vis_backends=[dict(type='LocalVisBackend')])
    runner = SimpleNamespace(visualizer=vis, test_dataloader=SimpleNamespace(
        dataset=SimpleNamespace(metainfo=dict(classes=['car']))), work_dir=str(tmp_path),
        timestamp='ts')
    hook = BEVVisualizationHook(draw=True, dpi=40)
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=[sample])
    (png, ) = glob.glob(str(tmp_path / 'vis_data' / 'vis_image' / '*.png'))
    assert osp.basename(png) == f'test_{frame["token"]}_0.png'
    hook.test_out_dir = 'show'  # tools/test.py --show-dir: files instead
    hook.after_test_iter(runner, 1, outputs=[sample])
    assert osp.isfile(tmp_path / 'ts' / 'show' / f'{frame["token"]}.png')
    assert len(glob.glob(str(tmp_path / 'vis_data' / 'vis_image' / '*.png'))) == 1
    with pytest.raises(ValueError, match='interval'):
        BEVVisualizationHook(interval=0)
