"""Where the tests' data files live: ``tests/data`` in this repository.

Every file a test reads is committed under ``tests/data`` (a clone runs its own tests with
nothing beside it); ``tests/test_data_paths.py`` checks that no test reaches outside the
repository. The module keeps its old name because tests import it.
"""
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The repository's test data folder.
TEST_DATA_DIR = osp.join(REPO_ROOT, 'tests', 'data')
#: One real nuScenes key frame (6 images, LiDAR sweep, 69 boxes): see its README.md.
REAL_SAMPLE_DIR = osp.join(TEST_DATA_DIR, 'nuscenes_sample')
#: Inputs and outputs of the original BEVFormer v1 code (tiny config, random weights): see
#: tests/data/bevformer_reference/README.md and FIXTURE_README.md in this folder.
BEVFORMER_REFERENCE_DIR = osp.join(TEST_DATA_DIR, 'bevformer_reference', 'tiny_small')
