"""Writing the dataroot: the 13 nuScenes tables, images, LiDAR sweeps, CAN bus and layout."""
import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import time
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from projects.bevformer.constants import CAMERAS

from .layout import layout_to_json
from .lidar import lidar_scan
from .poses import pose_from_quat, yaw_quat
from .render import CameraModel, render_camera
from .rig import CAMERA_TIME_OFFSETS_US, FULL_HEIGHT, FULL_WIDTH, LIDAR_TOP, RIG
from .scenes import Scene, scene_names
from .textures import GroundTexture

# The 23 nuScenes categories and 8 attributes (names as in the real tables).
CATEGORIES = (
    'animal', 'human.pedestrian.adult', 'human.pedestrian.child',
    'human.pedestrian.construction_worker', 'human.pedestrian.personal_mobility',
    'human.pedestrian.police_officer', 'human.pedestrian.stroller',
    'human.pedestrian.wheelchair', 'movable_object.barrier', 'movable_object.debris',
    'movable_object.pushable_pullable', 'movable_object.trafficcone',
    'static_object.bicycle_rack', 'vehicle.bicycle', 'vehicle.bus.bendy', 'vehicle.bus.rigid',
    'vehicle.car', 'vehicle.construction', 'vehicle.emergency.ambulance',
    'vehicle.emergency.police', 'vehicle.motorcycle', 'vehicle.trailer', 'vehicle.truck')
ATTRIBUTES = ('cycle.with_rider', 'cycle.without_rider', 'pedestrian.moving',
              'pedestrian.sitting_lying_down', 'pedestrian.standing', 'vehicle.moving',
              'vehicle.parked', 'vehicle.stopped')
VISIBILITY_LEVELS = (('1', 'v0-40'), ('2', 'v40-60'), ('3', 'v60-80'), ('4', 'v80-100'))


def make_token(*parts) -> str:
    """A deterministic 32-hex token (nuScenes tokens look the same)."""
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


def generate_synthetic_nuscenes(root: str, num_scenes: int = 10, frames_per_scene: int = 12,
                                objects_per_frame: int = 14, image_scale: float = 0.2,
                                seed: int = 0, version: str = 'v1.0-mini',
                                num_val_scenes: Optional[int] = None,
                                other_prob: float = 0.04, lidar_beams: int = 32,
                                lidar_azimuth_steps: int = 1080, lidar_ground_keep: int = 4,
                                jpeg_quality: int = 92, verbose: bool = True,
                                workers: int = 1) -> dict:
    """Write a synthetic nuScenes dataroot (see the module docstring).

    Args:
        root (str): output directory (created; existing files of the same names are
            overwritten).
        num_scenes (int): scenes; v1.0-mini allows at most 10 (8 train + 2 val names).
        frames_per_scene (int): key frames per scene (2 Hz).
        objects_per_frame (int): minimum number of annotated objects per key frame.
        image_scale (float): image size relative to 1600x900; intrinsics are scaled.
        seed (int): everything is deterministic given the seed.
        version (str): 'v1.0-mini', 'v1.0-trainval' or 'v1.0-test' (no annotations).
        num_val_scenes (int, optional): default: 2 of 10 mini scenes, 20 % for trainval.
        other_prob (float): probability that a spawned object is of a non-detection
            category (label -1 in the infos).
        lidar_beams, lidar_azimuth_steps (int): the simulated LiDAR's resolution.
        lidar_ground_keep (int): keep every n-th ground return (objects keep all).
        workers (int): processes rendering scenes in parallel; the output does not depend on
            it.

    Returns:
        dict: ``root``, ``version``, ``scenes`` (list of dicts with ``name``, ``split``,
        ``token``, ``sample_tokens``), ``num_samples``, ``num_annotations``,
        ``num_zero_point_annotations``, ``seconds``.
    """
    import cv2
    if frames_per_scene < 2:
        raise ValueError(f'frames_per_scene must be >= 2, got {frames_per_scene}')
    if not 0.02 <= image_scale <= 1.0:
        raise ValueError(f'image_scale must be in [0.02, 1], got {image_scale}')
    start_time = time.time()
    rng_master = np.random.default_rng(seed)
    names = scene_names(version, num_scenes, num_val_scenes)
    with_annotations = version != 'v1.0-test'
    width, height = int(round(FULL_WIDTH * image_scale)), int(round(FULL_HEIGHT * image_scale))
    sx, sy = width / FULL_WIDTH, height / FULL_HEIGHT
    table_dir = osp.join(root, version)
    for sub in [table_dir, osp.join(root, 'maps'), osp.join(root, 'can_bus'),
                osp.join(root, 'samples', 'LIDAR_TOP')] + [
                    osp.join(root, 'samples', c) for c in CAMERAS]:
        os.makedirs(sub, exist_ok=True)

    tables: Dict[str, list] = {k: [] for k in (
        'category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
        'ego_pose', 'log', 'scene', 'sample', 'sample_data', 'sample_annotation', 'map')}
    cat_token = {n: make_token(seed, 'category', n) for n in CATEGORIES}
    tables['category'] = [dict(token=cat_token[n], name=n, description=f'{n} (synthetic)')
                          for n in CATEGORIES]
    attr_token = {n: make_token(seed, 'attribute', n) for n in ATTRIBUTES}
    tables['attribute'] = [dict(token=attr_token[n], name=n, description=f'{n} (synthetic)')
                           for n in ATTRIBUTES]
    tables['visibility'] = [dict(token=t, level=lvl, description=f'visibility of {lvl} %')
                            for t, lvl in VISIBILITY_LEVELS]
    channels = list(CAMERAS) + ['LIDAR_TOP']
    sensor_token = {c: make_token(seed, 'sensor', c) for c in channels}
    tables['sensor'] = [dict(token=sensor_token[c], channel=c,
                             modality='lidar' if c == 'LIDAR_TOP' else 'camera')
                        for c in channels]
    intrinsics = {}
    for cam in CAMERAS:
        _, _, f, cx, cy = RIG[cam]
        intrinsics[cam] = np.array([[f * sx, 0, cx * sx], [0, f * sy, cy * sy], [0, 0, 1]])
    sensor2ego = {cam: pose_from_quat(RIG[cam][0], RIG[cam][1]) for cam in CAMERAS}
    sensor2ego['LIDAR_TOP'] = pose_from_quat(*LIDAR_TOP)
    cam_models = {cam: CameraModel(width, height, intrinsics[cam], sensor2ego[cam])
                  for cam in CAMERAS}
    # sensor noise: random crops of one fixed noise image
    noise = 0.012 * rng_master.standard_normal((height + 64, width + 64, 3), dtype=np.float32)

    ctx = _SceneContext(
        root=root, seed=seed, frames_per_scene=frames_per_scene,
        objects_per_frame=objects_per_frame, other_prob=other_prob,
        with_annotations=with_annotations, width=width, height=height,
        intrinsics=intrinsics, sensor2ego=sensor2ego, cam_models=cam_models, noise=noise,
        cat_token=cat_token, sensor_token=sensor_token, attr_token=attr_token,
        lidar_beams=lidar_beams, lidar_azimuth_steps=lidar_azimuth_steps,
        lidar_ground_keep=lidar_ground_keep, jpeg_quality=jpeg_quality)
    jobs = [(idx, name, split) for idx, (name, split) in enumerate(names)]
    workers = max(1, min(int(workers), len(jobs)))
    layouts = {}
    summary_scenes = []
    num_ann = num_zero = 0
    # Scenes draw from their own generators ([seed, idx]) and are merged in order, so any
    # number of workers writes the same bytes.
    write = functools.partial(_write_scene, ctx)
    with contextlib.ExitStack() as stack:
        if workers > 1:  # the pool is terminated on leaving, also when a scene raises
            parts = stack.enter_context(multiprocessing.Pool(workers)).imap(write, jobs)
        else:
            parts = map(write, jobs)
        for part in parts:
            for key, records in part['tables'].items():
                tables[key].extend(records)
            layouts[part['summary']['name']] = part['layout']
            summary_scenes.append(part['summary'])
            num_ann += part['num_annotations']
            num_zero += part['num_zero_point_annotations']
            if verbose:
                print(f"[synthetic nuScenes] {part['summary']['name']} "
                      f"({part['summary']['split']}): {part['num_objects']} objects, "
                      f'{frames_per_scene} frames', flush=True)

    map_token = make_token(seed, 'map')
    map_file = f'maps/{map_token}.png'
    cv2.imwrite(osp.join(root, map_file), np.zeros((8, 8), np.uint8))
    tables['map'] = [dict(token=map_token, log_tokens=[r['token'] for r in tables['log']],
                          category='semantic_prior', filename=map_file)]
    for name, records in tables.items():
        with open(osp.join(table_dir, f'{name}.json'), 'w') as f:
            json.dump(records, f)
    with open(osp.join(root, 'maps', 'synthetic_layout.json'), 'w') as f:
        json.dump(dict(version=version, frame='global',
                       layers=['drivable_area', 'walkway', 'lane_divider', 'road_divider',
                               'ped_crossing'],
                       scenes=layouts), f)
    summary = dict(root=root, version=version, scenes=summary_scenes,
                   num_samples=len(tables['sample']), num_annotations=num_ann,
                   num_zero_point_annotations=num_zero, seconds=time.time() - start_time)
    if verbose:
        print(f'[synthetic nuScenes] wrote {summary["num_samples"]} samples, {num_ann} '
              f'annotations ({num_zero} without LiDAR points) to {root} in '
              f'{summary["seconds"]:.1f} s', flush=True)
    return summary


class _SceneContext(NamedTuple):
    """What every scene's writer reads (picklable: it goes to the worker processes)."""
    root: str
    seed: int
    frames_per_scene: int
    objects_per_frame: int
    other_prob: float
    with_annotations: bool
    width: int
    height: int
    intrinsics: Dict[str, np.ndarray]
    sensor2ego: Dict[str, np.ndarray]
    cam_models: Dict[str, CameraModel]
    noise: np.ndarray
    cat_token: Dict[str, str]
    sensor_token: Dict[str, str]
    attr_token: Dict[str, str]
    lidar_beams: int
    lidar_azimuth_steps: int
    lidar_ground_keep: int
    jpeg_quality: int


def _write_scene(ctx: _SceneContext, job: Tuple[int, str, str]) -> dict:
    """Render and write one scene's images, sweeps and CAN bus; return its table records.

    Returns:
        dict: ``tables`` (table name -> records of this scene, in the serial writer's order),
        ``layout``, ``summary``, ``num_objects``, ``num_annotations``,
        ``num_zero_point_annotations``.
    """
    import cv2
    idx, scene_name, split = job
    root, seed, frames_per_scene = ctx.root, ctx.seed, ctx.frames_per_scene
    with_annotations, width, height = ctx.with_annotations, ctx.width, ctx.height
    cat_token, sensor_token, attr_token = ctx.cat_token, ctx.sensor_token, ctx.attr_token
    channels = list(CAMERAS) + ['LIDAR_TOP']
    tables: Dict[str, list] = {k: [] for k in (
        'log', 'calibrated_sensor', 'sample', 'ego_pose', 'sample_data', 'sample_annotation',
        'instance', 'scene')}
    num_ann = num_zero = 0
    rng = np.random.default_rng([seed, idx])
    scene = Scene(idx, scene_name, split, frames_per_scene, ctx.objects_per_frame, rng,
                  ctx.other_prob)
    for j, obj in enumerate(scene.objects):
        obj.token = make_token(seed, 'instance', scene_name, j)
    ground = GroundTexture(scene.layout, rng)
    log_token = make_token(seed, 'log', scene_name)
    scene_token = make_token(seed, 'scene', scene_name)
    logfile = f'n000-synthetic-{idx:04d}'
    tables['log'].append(dict(token=log_token, logfile=logfile, vehicle='n000',
                              date_captured='2018-07-24', location='synthetic'))
    layout = dict(scene_token=scene_token, log_token=log_token, **layout_to_json(scene.layout))
    calib = {}
    for c in channels:
        calib[c] = make_token(seed, 'calibrated_sensor', scene_name, c)
        tables['calibrated_sensor'].append(dict(
            token=calib[c], sensor_token=sensor_token[c],
            translation=list(RIG[c][0] if c != 'LIDAR_TOP' else LIDAR_TOP[0]),
            rotation=list(RIG[c][1] if c != 'LIDAR_TOP' else LIDAR_TOP[1]),
            camera_intrinsic=ctx.intrinsics[c].tolist() if c != 'LIDAR_TOP' else []))
    sample_tokens = [make_token(seed, 'sample', scene_name, k) for k in range(frames_per_scene)]
    ann_tokens: Dict[Tuple[int, int], str] = {}
    for j, obj in enumerate(scene.objects):
        for k in obj.frames:
            ann_tokens[(j, k)] = make_token(seed, 'sample_annotation', scene_name, j, k)
    prev_sd = {c: '' for c in channels}
    sd_records = {c: [] for c in channels}
    for k in range(frames_per_scene):
        lidar_us = int(scene.frame_us[k])
        tables['sample'].append(dict(
            token=sample_tokens[k], timestamp=lidar_us, scene_token=scene_token,
            prev=sample_tokens[k - 1] if k > 0 else '',
            next=sample_tokens[k + 1] if k < frames_per_scene - 1 else ''))
        visible = np.zeros(len(scene.objects), np.int64)
        silhouette = np.zeros(len(scene.objects), np.int64)
        for c in channels:
            us = lidar_us + (CAMERA_TIME_OFFSETS_US[c] if c != 'LIDAR_TOP' else 0)
            ex, ey, eyaw = scene.ego_pose(us)[0]
            ego2global = pose_from_quat((ex, ey, 0.0), yaw_quat(eyaw))
            sd_token = make_token(seed, 'sample_data', scene_name, k, c)
            sensor2global = ego2global @ ctx.sensor2ego[c]
            boxes = scene.boxes_at(us, frame=k)
            if c == 'LIDAR_TOP':
                fname = f'samples/LIDAR_TOP/{logfile}__LIDAR_TOP__{us}.pcd.bin'
                points, counts = lidar_scan(scene, sensor2global, boxes, ctx.lidar_beams,
                                             ctx.lidar_azimuth_steps, 70.0, ctx.lidar_ground_keep)
                points.tofile(osp.join(root, fname))
                w_h = (0, 0)
                lidar_counts = counts
            else:
                fname = f'samples/{c}/{logfile}__{c}__{us}.jpg'
                img = render_camera(scene, ground, ctx.cam_models[c], ego2global,
                                     sensor2global, boxes, ctx.noise, rng, visible, silhouette)
                cv2.imwrite(osp.join(root, fname), img[..., ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, ctx.jpeg_quality])
                w_h = (width, height)
            tables['ego_pose'].append(dict(token=sd_token, timestamp=us,
                                           rotation=yaw_quat(eyaw),
                                           translation=[float(ex), float(ey), 0.0]))
            rec = dict(token=sd_token, sample_token=sample_tokens[k], ego_pose_token=sd_token,
                       calibrated_sensor_token=calib[c], timestamp=us,
                       fileformat='pcd' if c == 'LIDAR_TOP' else 'jpg', is_key_frame=True,
                       height=w_h[1], width=w_h[0], filename=fname, prev=prev_sd[c], next='')
            if sd_records[c]:
                sd_records[c][-1]['next'] = sd_token
            sd_records[c].append(rec)
            prev_sd[c] = sd_token
        if not with_annotations:
            continue
        lidar_us = int(scene.frame_us[k])
        for j, box in scene.boxes_at(lidar_us, frame=k):
            obj = scene.objects[j]
            frames = obj.frames
            pos = frames.index(k)
            ratio = visible[j] / silhouette[j] if silhouette[j] else 0.0
            vis = '1' if ratio < 0.4 else '2' if ratio < 0.6 else '3' if ratio < 0.8 else '4'
            attr = obj.attribute()
            tables['sample_annotation'].append(dict(
                token=ann_tokens[(j, k)], sample_token=sample_tokens[k],
                instance_token=obj.token, visibility_token=vis,
                attribute_tokens=[attr_token[attr]] if attr else [],
                translation=[float(box[0]), float(box[1]), float(box[2])],
                size=[float(box[4]), float(box[3]), float(box[5])],  # w, l, h
                rotation=yaw_quat(float(box[6])),
                prev=ann_tokens[(j, frames[pos - 1])] if pos > 0 else '',
                next=ann_tokens[(j, frames[pos + 1])] if pos < len(frames) - 1 else '',
                num_lidar_pts=int(lidar_counts[j]), num_radar_pts=0))
            num_ann += 1
            num_zero += int(lidar_counts[j] == 0)
    for c in channels:
        tables['sample_data'].extend(sd_records[c])
    if with_annotations:
        for j, obj in enumerate(scene.objects):
            tables['instance'].append(dict(
                token=obj.token, category_token=cat_token[obj.spec.category],
                nbr_annotations=len(obj.frames),
                first_annotation_token=ann_tokens[(j, obj.frames[0])],
                last_annotation_token=ann_tokens[(j, obj.frames[-1])]))
    tables['scene'].append(dict(
        token=scene_token, log_token=log_token, nbr_samples=frames_per_scene,
        first_sample_token=sample_tokens[0], last_sample_token=sample_tokens[-1],
        name=scene_name, description=f'synthetic scene {idx} ({split})'))
    write_can_bus(root, scene)
    return dict(tables=tables, layout=layout,
                summary=dict(name=scene_name, split=split, token=scene_token,
                             sample_tokens=sample_tokens),
                num_objects=len(scene.objects), num_annotations=num_ann,
                num_zero_point_annotations=num_zero)


def write_can_bus(root: str, scene: Scene) -> None:
    """50 Hz CAN-bus pose messages (keys as in the real ``scene-XXXX_pose.json``)."""
    t = np.arange(-0.5, scene.duration + 0.5, 0.02)
    us = scene.start_us + np.round(t * 1e6).astype(np.int64)
    pose = scene.ego_pose(us)
    dt = 0.02
    vel_xy = np.gradient(pose[:, :2], dt, axis=0)
    yaw = np.unwrap(pose[:, 2])
    yaw_rate = np.gradient(yaw, dt)
    cos, sin = np.cos(pose[:, 2]), np.sin(pose[:, 2])
    v_fwd = vel_xy[:, 0] * cos + vel_xy[:, 1] * sin
    a_fwd = np.gradient(v_fwd, dt)
    a_lat = v_fwd * yaw_rate
    msgs = []
    for i in range(len(t)):
        msgs.append(dict(
            accel=[float(a_fwd[i]), float(a_lat[i]), 9.81],
            orientation=yaw_quat(float(pose[i, 2])),
            pos=[float(pose[i, 0]), float(pose[i, 1]), 0.0],
            rotation_rate=[0.0, 0.0, float(yaw_rate[i])],
            utime=int(us[i]),
            vel=[float(v_fwd[i]), 0.0, 0.0]))
    with open(osp.join(root, 'can_bus', f'{scene.name}_pose.json'), 'w') as f:
        json.dump(msgs, f)
