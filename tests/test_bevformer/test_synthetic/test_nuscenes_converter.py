"""The nuScenes info converter (tools/dataset_converters/nuscenes_converter.py) on the synthetic
dataroot (``dataroot`` in conftest.py): the infos reproduce the devkit's ground truth, a test
split has no boxes, bad input is named, tools/create_data.py writes the same files.

These are tests of tools/ kept beside the generator whose dataroot they read; they belong in
tests/test_tools/ (test_dataset_converters/) once that folder takes them.
"""
import os
import os.path as osp

import mmengine
import numpy as np
import pytest

from projects.bevformer.constants import CAMERAS, CLASSES
from projects.bevformer.geometry.boxes import lidar_boxes_to_global, quaternion_to_yaw
from projects.bevformer.synthetic import generate_synthetic_nuscenes
from tools.dataset_converters.nuscenes_converter import create_nuscenes_infos


def test_infos_match_devkit_ground_truth(dataroot):
    root, summary, paths, nusc = dataroot
    assert set(paths) == {'train', 'val'}
    infos = {k: mmengine.load(p) for k, p in paths.items()}
    assert len(infos['train']['data_list']) == 6 and len(infos['val']['data_list']) == 3
    meta = infos['val']['metainfo']
    assert meta['version'] == 'v1.0-mini' and meta['classes'] == list(CLASSES)
    assert meta['cameras'] == list(CAMERAS)
    assert {i['scene_name'] for i in infos['val']['data_list']} == {'scene-0103'}
    for split, data in infos.items():
        last = None
        for info in data['data_list']:
            sample = nusc.get('sample', info['token'])
            assert (info['prev'], info['next'], info['timestamp']) == (
                sample['prev'], sample['next'], sample['timestamp'])
            assert info['frame_idx'] == (0 if info['prev'] == '' else last['frame_idx'] + 1)
            if info['prev']:
                assert last['token'] == info['prev']
            last = info
            lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
            pose = nusc.get('ego_pose', lidar_sd['ego_pose_token'])
            np.testing.assert_allclose(info['ego2global'][:3, 3], pose['translation'])
            np.testing.assert_allclose(info['can_bus'][:3], pose['translation'])
            np.testing.assert_allclose(info['can_bus'][3:7], pose['rotation'])
            yaw = quaternion_to_yaw(np.array(pose['rotation'])) % (2 * np.pi)
            assert info['can_bus'][16] == pytest.approx(yaw)
            assert info['can_bus'][17] == pytest.approx(np.degrees(yaw))
            assert info['can_bus'][13] >= 0  # forward speed from the CAN bus
            assert info['lidar_path'] == lidar_sd['filename']
            lidar2global = info['ego2global'] @ info['lidar2ego']
            for cam in CAMERAS:
                c = info['cams'][cam]
                cam2img4 = np.eye(4)
                cam2img4[:3, :3] = c['cam2img']
                np.testing.assert_allclose(c['lidar2img'], cam2img4 @ c['lidar2cam'])
                # lidar2cam uses the ego pose at the camera's own timestamp
                np.testing.assert_allclose(
                    c['lidar2cam'],
                    np.linalg.inv(c['ego2global'] @ c['cam2ego']) @ lidar2global, atol=1e-9)
                sd = nusc.get('sample_data', c['sample_data_token'])
                cam_pose = nusc.get('ego_pose', sd['ego_pose_token'])
                np.testing.assert_allclose(c['ego2global'][:3, 3], cam_pose['translation'])
                assert c['timestamp'] == sd['timestamp'] != info['timestamp']
            # boxes: one per annotation, back in the global frame they are the annotations
            anns = [nusc.get('sample_annotation', t) for t in sample['anns']]
            assert len(info['instances']) == len(anns)
            by_token = {a['instance_token']: a for a in anns}
            boxes = np.array([i['bbox_3d'] + i['velocity'] for i in info['instances']])
            glob = lidar_boxes_to_global(boxes, lidar2global)
            for k, inst in enumerate(info['instances']):
                ann = by_token[inst['instance_token']]
                np.testing.assert_allclose(glob['center'][k], ann['translation'], atol=1e-6)
                np.testing.assert_allclose(glob['size_wlh'][k], ann['size'], atol=1e-9)
                assert quaternion_to_yaw(glob['rotation'][k]) == pytest.approx(
                    quaternion_to_yaw(np.array(ann['rotation'])), abs=1e-3)
                vel = nusc.box_velocity(ann['token'])[:2]
                if np.isnan(vel).any():
                    assert np.isnan(inst['velocity']).all()
                else:
                    np.testing.assert_allclose(glob['velocity'][k], vel, atol=0.02)
                assert inst['num_lidar_pts'] == ann['num_lidar_pts']
                assert inst['valid_flag'] == (ann['num_lidar_pts'] + ann['num_radar_pts'] > 0)
                assert inst['label'] == (CLASSES.index(inst['name'])
                                         if inst['name'] in CLASSES else -1)
                attr = ann['attribute_tokens']
                assert inst['attribute'] == (nusc.get('attribute', attr[0])['name']
                                             if attr else '')


def test_test_split_and_bad_input(tmp_path, dataroot):
    root = str(tmp_path / 'test')
    generate_synthetic_nuscenes(root, num_scenes=1, frames_per_scene=2, objects_per_frame=3,
                                image_scale=0.04, version='v1.0-test', verbose=False)
    paths = create_nuscenes_infos(root, root, version='v1.0-test', extra_tag='synth',
                                  progress=False)
    assert list(paths) == ['test'] and paths['test'].endswith('synth_infos_test.pkl')
    data = mmengine.load(paths['test'])['data_list']
    assert len(data) == 2 and all(d['instances'] == [] for d in data)
    # a missing image is named in the error
    img = osp.join(root, data[0]['cams']['CAM_BACK']['img_path'])
    os.rename(img, img + '.bak')
    try:
        with pytest.raises(FileNotFoundError, match='CAM_BACK'):
            create_nuscenes_infos(root, root, version='v1.0-test', progress=False)
    finally:
        os.rename(img + '.bak', img)
    with pytest.raises(FileNotFoundError, match='v1.0-trainval'):
        create_nuscenes_infos(root, root, version='v1.0-trainval', progress=False)
    with pytest.raises(ValueError, match='scene names'):
        generate_synthetic_nuscenes(str(tmp_path / 'x'), num_scenes=11, verbose=False)


def test_create_data_cli(tmp_path, dataroot):
    from tools.create_data import main
    root = dataroot[0]
    main(['nuscenes', '--root-path', root, '--version', 'v1.0-mini', '--out-dir',
          str(tmp_path), '--extra-tag', 'synth'])
    val = mmengine.load(str(tmp_path / 'synth_infos_val.pkl'))
    assert len(val['data_list']) == 3
