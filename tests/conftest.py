"""Test set-up: the repository root on sys.path, small thread pools, a fixed seed; the one
fixture tests in several folders read, ``tiny_root``.

Fixtures shared within a folder live in that folder's conftest.py (tests/test_bevformer/,
tests/test_bevformer/test_geometry/, tests/test_bevformer/test_synthetic/, tests/test_tools/).
"""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='session')
def tiny_root(tmp_path_factory) -> str:
    """A tiny synthetic nuScenes dataroot with its info files: 2 scenes (one train, one val)
    of 4 frames, images at 0.1 scale (``make_synthetic_dataroot``). Read only."""
    from tests.test_bevformer.bev_data_helpers import make_synthetic_dataroot
    root = str(tmp_path_factory.mktemp('tiny_nuscenes'))
    make_synthetic_dataroot(root, num_scenes=2, frames_per_scene=4)
    return root
