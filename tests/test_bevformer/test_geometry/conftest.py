"""The real key frame as the geometry tests read it: tests/data/nuscenes_sample/sample.json."""
import json
import os.path as osp

import pytest

from tests.shared_data import REAL_SAMPLE_DIR


@pytest.fixture(scope='session')
def sample_json() -> dict:
    """sample.json parsed (read only)."""
    with open(osp.join(REAL_SAMPLE_DIR, 'sample.json')) as f:
        return json.load(f)
