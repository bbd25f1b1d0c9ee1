"""Where the shared fixtures live: ``shared/`` beside the repository checkout
(../shared from the repo root), as on developer machines and in CI."""
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DIR = osp.normpath(osp.join(REPO_ROOT, '..', 'shared'))
#: One real nuScenes key frame (6 images, LiDAR sweep, boxes): see its README.md.
REAL_SAMPLE_DIR = osp.join(SHARED_DIR, 'data', 'nuscenes_sample')
