"""Fixtures shared by the BEVFormer tests (each is read only: tests copy what they change).

- ``synth``: hand-made infos (:func:`write_synthetic_infos`, SYNTH_FRAMES, frame s1f1 without a
  valid box of a kept class) for the dataset, sampler and preprocessor tests.
- ``real_info``: the real nuScenes key frame as one info entry (tests/data/nuscenes_sample).

``tiny_root`` (the tiny synthetic dataroot) is in tests/conftest.py.
"""
import pytest

from tests.test_bevformer.bev_data_helpers import (SYNTH_FRAMES, real_sample_info,
                                                   write_synthetic_infos)


@pytest.fixture(scope='session')
def synth(tmp_path_factory):
    """``(root, info path)``."""
    root = tmp_path_factory.mktemp('synth')
    path = write_synthetic_infos(str(root), SYNTH_FRAMES, empty_frames=('s1f1', ))
    return str(root), path


@pytest.fixture(scope='session')
def real_info() -> dict:
    """The key frame's info entry (``real_sample_info()['data_list'][0]``)."""
    return real_sample_info()['data_list'][0]
