"""nuScenes names shared by the converter, the dataset, the metric, the visualiser and the
synthetic generator (the info format of docs/data_format.md stores them in its metainfo).

Configs are text and keep their own ``class_names`` list.
"""

# The 10 classes of the nuScenes detection challenge; an instance's ``label`` indexes this.
CLASSES = ('car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
           'bicycle', 'pedestrian', 'traffic_cone')
# The six camera channels, in the order of ``lidar2img`` (N_cam, 4, 4) and the images.
CAMERAS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
           'CAM_BACK_RIGHT')
