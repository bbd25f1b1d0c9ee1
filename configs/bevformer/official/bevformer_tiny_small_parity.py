# The model of the original-BEVFormer parity fixture (tests/data/bevformer_reference/tiny_small:
# the official tiny config with widths shrunk for a CPU, random weights) in legacy mode, on the
# synthetic nuScenes dataroot. The fixture checkpoint converted by
# tools/model_converters/bevformer_official_to_mm.py loads into it with strict=True, and
# tools/test.py runs it (its weights are random: expect NDS ~ 0).
_base_ = [
    '../../_base_/datasets/nuscenes_synthetic.py', '../../_base_/models/bevformer_base.py',
    '../../_base_/schedules/adamw_cosine_24e.py', '../../_base_/default_runtime.py'
]
custom_imports = dict(imports=['projects.bevformer'], allow_failed_imports=False)

embed_dims = 64

model = dict(
    # The fixture's normalisation (official tiny: torchvision RGB statistics).
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    img_backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        base_channels=4,  # C5 has 4 * 4 * 8 = 128 channels
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch'),
    img_neck=dict(in_channels=[128], out_channels=embed_dims, num_outs=1),
    bev_encoder=dict(
        bev_h=50, bev_w=50, embed_dims=embed_dims, num_feature_levels=1, num_layers=3,
        legacy=dict(), layer_cfg=dict(ffn_cfg=dict(feedforward_channels=2 * embed_dims))),
    heads=dict(
        det=dict(
            num_query=100, legacy=dict(),
            decoder=dict(layer_cfg=dict(ffn_cfg=dict(feedforward_channels=2 * embed_dims))))))

default_hooks = dict(visualization=dict(type='BEVVisualizationHook'))
