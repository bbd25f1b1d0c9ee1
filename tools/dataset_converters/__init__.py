"""Dataset converters: a dataset's own annotation format -> our info files (docs/data_format.md).

Run through ``tools/create_data.py``; ``nuscenes_converter`` builds the nuScenes infos.
``foreign_infos`` converts other projects' nuScenes info files (the original BEVFormer's, mmdet3d
1.x's) into ours; ``convert_infos.py`` is its command line.
"""
