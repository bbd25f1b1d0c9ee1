"""A synthetic nuScenes dataroot: the real v1.0 layout, rendered from a simple 3D world.

:func:`generate_synthetic_nuscenes` (``tools/create_synthetic_nuscenes.py``) writes

- ``<root>/<version>/*.json``: all 13 nuScenes tables (loadable by ``nuscenes.NuScenes``),
- ``<root>/maps/<token>.png`` (a placeholder map mask) and ``<root>/maps/synthetic_layout.json``
  (per-scene road layout in the global frame: drivable area, walkways, lane / road dividers,
  pedestrian crossings),
- ``<root>/samples/CAM_*/*.jpg``: six images per key frame from the real nuScenes camera rig
  (intrinsics scaled with the image size),
- ``<root>/samples/LIDAR_TOP/*.pcd.bin``: float32 ``(x, y, z, intensity, ring)`` points of a
  simulated 32-beam LiDAR (ray cast against the same world),
- ``<root>/can_bus/scene-XXXX_pose.json``: 50 Hz CAN-bus pose messages.

The world of a scene: a road (a curved axis with two lanes each way, sidewalks, optionally a
crossing road with zebra crossings) and objects of all 10 detection classes with
class-typical sizes and appearance, parked or moving along the road. The ego car drives
along the road with a varying speed. Images are rendered by an exact per-pixel ray cast
against the oriented boxes and the ground plane, so the boxes are correctly occluded, and
moving objects are rendered at each camera's own timestamp. Everything is deterministic
given ``seed``.

Modules, one concept each: ``rig`` (the sensors), ``poses`` (rotation / pose maths),
``layout`` (the road), ``objects`` (class specs, placement, motion), ``scenes`` (scene
names, ego track, spawning), ``textures`` (ground texture, object albedo), ``raycast``
(ray / box intersection), ``render`` (camera images), ``lidar`` (the LiDAR sweep) and
``tables`` (writing the dataroot). Nothing at training time imports this package.
"""

# Deliberately independent of geometry/: this package makes the ground truth that
# geometry/boxes.py, geometry/camera.py, the info converter and the metric are checked
# against, so it keeps its own quaternion and pose maths (poses.py), box corners
# (raycast.centre_box_corners) and attribute rule (objects.SceneObject.attribute). Were they
# shared, a bug there (a transposed rotation, a flipped yaw) would move the rendered images,
# the tables and the converted infos together and pass every check. Only names
# (constants.CAMERAS, CLASSES) are shared.
from .scenes import scene_names
from .tables import generate_synthetic_nuscenes

__all__ = ['generate_synthetic_nuscenes', 'scene_names']
