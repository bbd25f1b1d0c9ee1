"""BEV map segmentation labels of a frame: road layout -> (num_classes, bev_h, bev_w) uint8.

Two map sources, both in the global frame:

- the synthetic generator's ``<data_root>/maps/synthetic_layout.json``
  (``{'scenes': {scene_name: {layer: [polygon | polyline as [[x, y], ...]]}}}``);
- the nuScenes map expansion under ``<data_root>/maps/expansion`` through the devkit's
  ``NuScenesMap`` (records in the BEV patch, then their polygons / lines), for real data.

The rasterisation is :mod:`projects.bevformer.geometry.rasterize` (row = LiDAR y,
column = LiDAR x, the layout of B_t).
"""
import json
import os.path as osp
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ...geometry.rasterize import (bev_patch_in_global, rasterize_polygons,
                                   rasterize_polylines)

# Label class -> the map layers it is the union of.
CLASS_LAYERS: Dict[str, Tuple[str, ...]] = {
    'drivable_area': ('drivable_area', ),
    'ped_crossing': ('ped_crossing', ),
    'walkway': ('walkway', ),
    'divider': ('lane_divider', 'road_divider'),
    'lane_divider': ('lane_divider', ),
    'road_divider': ('road_divider', ),
    'stop_line': ('stop_line', ),
    'carpark_area': ('carpark_area', ),
}
LINE_LAYERS = frozenset({'lane_divider', 'road_divider'})
DEFAULT_SEG_CLASSES = ('drivable_area', 'ped_crossing', 'walkway', 'divider')


@lru_cache(maxsize=4)
def load_synthetic_layout(path: str) -> Dict[str, Dict[str, List[np.ndarray]]]:
    """Read a synthetic layout JSON once per process.

    Returns:
        dict: scene_name -> layer -> list of (N, 2) float64 arrays (global frame).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'LoadBEVSegLabels: layout file not found: {path}')
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f'LoadBEVSegLabels: {path} is not valid JSON ({err})') from None
    if not isinstance(data, dict) or not isinstance(data.get('scenes'), dict):
        raise ValueError(f"LoadBEVSegLabels: {path} must hold {{'scenes': {{scene_name: "
                         f"{{layer: [...]}}}}}}, got keys "
                         f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    out = {}
    for scene, layers in data['scenes'].items():
        out[scene] = {k: [np.asarray(g, dtype=np.float64) for g in v]
                      for k, v in layers.items() if isinstance(v, list)}
    return out


class _NuScenesMapSource:
    """Geometry from the nuScenes map expansion (devkit ``NuScenesMap``), per location."""

    def __init__(self, data_root: str, version: str) -> None:
        self.data_root = data_root
        table_dir = osp.join(data_root, version)
        try:
            with open(osp.join(table_dir, 'scene.json')) as f:
                scenes = json.load(f)
            with open(osp.join(table_dir, 'log.json')) as f:
                logs = {r['token']: r['location'] for r in json.load(f)}
        except FileNotFoundError as err:
            raise FileNotFoundError(f'LoadBEVSegLabels: map_version={version!r} needs the '
                                    f'nuScenes tables: {err.filename} is missing') from None
        self.location = {s['name']: logs[s['log_token']] for s in scenes}
        self._maps = {}

    def _map(self, location: str):
        if location not in self._maps:
            from nuscenes.map_expansion.map_api import NuScenesMap
            self._maps[location] = NuScenesMap(dataroot=self.data_root, map_name=location)
        return self._maps[location]

    def geometry(self, scene_name: str, layers: Sequence[str],
                 patch: Tuple[float, float, float, float]) -> Dict[str, list]:
        if scene_name not in self.location:
            raise KeyError(f'LoadBEVSegLabels: scene {scene_name!r} is not in the nuScenes '
                           f'tables under {self.data_root}')
        nusc_map = self._map(self.location[scene_name])
        records = nusc_map.get_records_in_patch(patch, list(layers), mode='intersect')
        out = {}
        for layer in layers:
            geoms = []
            for token in records.get(layer, []):
                rec = nusc_map.get(layer, token)
                if layer in LINE_LAYERS:
                    geoms.append(nusc_map.extract_line(rec['line_token']))
                else:  # drivable_area records hold several polygons
                    poly_tokens = rec.get('polygon_tokens') or [rec['polygon_token']]
                    geoms.extend(nusc_map.extract_polygon(t) for t in poly_tokens)
            out[layer] = geoms
        return out


@TRANSFORMS.register_module()
class LoadBEVSegLabels(BaseTransform):
    """Add ``gt_bev_seg`` (num_classes, bev_h, bev_w) uint8: the map layers around the frame.

    Channels follow ``classes`` (multi-label: classes may overlap, e.g. a crossing lies on
    the drivable area). Required keys: ``scene_name`` and ``lidar2global`` (4, 4) (as
    ``NuScenesBEVDataset`` provides).

    Args:
        classes (sequence of str): label classes, keys of :data:`CLASS_LAYERS`.
        bev_h (int), bev_w (int): label grid size (the BEV, or the head's output size).
        pc_range (sequence of 6 floats): the BEV range in the LiDAR frame.
        data_root (str): the dataroot; ``maps/synthetic_layout.json`` or
            ``maps/expansion`` are looked up there.
        layout_file (str, optional): a synthetic layout JSON (overrides the lookup).
        map_version (str, optional): nuScenes table version (e.g. ``'v1.0-trainval'``):
            use the devkit map expansion of ``data_root`` (scene -> location from its tables).
        line_width (float): width in metres given to line layers (dividers).
    """

    def __init__(self,
                 bev_h: int,
                 bev_w: int,
                 pc_range: Sequence[float],
                 classes: Sequence[str] = DEFAULT_SEG_CLASSES,
                 data_root: str = '',
                 layout_file: Optional[str] = None,
                 map_version: Optional[str] = None,
                 line_width: float = 1.0) -> None:
        unknown = [c for c in classes if c not in CLASS_LAYERS]
        if unknown or not classes:
            raise ValueError(f'LoadBEVSegLabels: unknown classes {unknown}; expected a non-empty '
                             f'subset of {sorted(CLASS_LAYERS)}')
        self.classes = tuple(classes)
        self.bev_h, self.bev_w = int(bev_h), int(bev_w)
        self.pc_range = tuple(float(v) for v in pc_range)
        self.line_width = float(line_width)
        self.layers = tuple(dict.fromkeys(l for c in self.classes for l in CLASS_LAYERS[c]))
        self.data_root = data_root
        self.layout_file = layout_file
        self.map_version = map_version
        self._source = None  # built lazily (in the dataloader worker)

    def _resolve_source(self):
        if self.layout_file is not None:
            return 'layout', self.layout_file
        expansion = osp.join(self.data_root, 'maps', 'expansion')
        if self.map_version is not None:
            if not osp.isdir(expansion):
                raise FileNotFoundError(f'LoadBEVSegLabels: map_version={self.map_version!r} '
                                        f'needs the nuScenes map expansion at {expansion}')
            return 'nuscenes', _NuScenesMapSource(self.data_root, self.map_version)
        layout = osp.join(self.data_root, 'maps', 'synthetic_layout.json')
        if osp.isfile(layout):
            return 'layout', layout
        raise FileNotFoundError(f'LoadBEVSegLabels: no map found: neither {layout} nor (with '
                                f'map_version set) {expansion}')

    def _geometry(self, scene_name: str, lidar2global: np.ndarray) -> Dict[str, list]:
        if self._source is None:
            self._source = self._resolve_source()
        kind, src = self._source
        if kind == 'nuscenes':
            return src.geometry(scene_name, self.layers,
                                bev_patch_in_global(lidar2global, self.pc_range))
        scenes = load_synthetic_layout(src)
        if scene_name not in scenes:
            raise KeyError(f'LoadBEVSegLabels: scene {scene_name!r} is not in {src} '
                           f'({len(scenes)} scenes)')
        return {layer: scenes[scene_name].get(layer, []) for layer in self.layers}

    def transform(self, results: dict) -> dict:
        for key in ('scene_name', 'lidar2global'):
            if key not in results:
                raise KeyError(f'LoadBEVSegLabels: results lack {key!r} (frame '
                               f'{results.get("token", "?")})')
        pose = np.asarray(results['lidar2global'], dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f'LoadBEVSegLabels: lidar2global must be (4, 4), got {pose.shape}')
        geoms = self._geometry(results['scene_name'], pose)
        grid = (self.bev_h, self.bev_w, self.pc_range)
        masks = {}
        for layer in self.layers:
            if layer in LINE_LAYERS:
                masks[layer] = rasterize_polylines(geoms[layer], pose, *grid, self.line_width)
            else:
                masks[layer] = rasterize_polygons(geoms[layer], pose, *grid)
        seg = np.zeros((len(self.classes), self.bev_h, self.bev_w), dtype=np.uint8)
        for k, cls in enumerate(self.classes):
            for layer in CLASS_LAYERS[cls]:
                seg[k] |= masks[layer]
        results['gt_bev_seg'] = seg
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(classes={self.classes}, bev_h={self.bev_h}, '
                f'bev_w={self.bev_w}, pc_range={self.pc_range}, line_width={self.line_width})')
