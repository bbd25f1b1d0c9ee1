"""Dataset converters: a dataset's own annotation format -> our info files (docs/data_format.md).

Run through ``tools/create_data.py``; ``nuscenes_converter`` builds the nuScenes infos.
"""
