"""The synthetic nuScenes dataroot the generator and converter tests read: 3 scenes of 3 frames,
6 objects a frame, images at SCALE, converted to info files and loaded in the devkit."""
import pytest
from nuscenes import NuScenes

from projects.bevformer.synthetic import generate_synthetic_nuscenes
from tools.dataset_converters.nuscenes_converter import create_nuscenes_infos

SCALE = 0.08  # 128 x 72 images


@pytest.fixture(scope='session')
def dataroot(tmp_path_factory):
    """(root, generator summary, info paths, NuScenes). Read only: the tests write elsewhere."""
    root = str(tmp_path_factory.mktemp('nusc_synth'))
    summary = generate_synthetic_nuscenes(root, num_scenes=3, frames_per_scene=3,
                                          objects_per_frame=6, image_scale=SCALE, seed=3,
                                          verbose=False)
    paths = create_nuscenes_infos(root, root, version='v1.0-mini', progress=False)
    nusc = NuScenes(version='v1.0-mini', dataroot=root, verbose=False)
    return root, summary, paths, nusc
