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
ffn_dims = 128
bev_h = 50
bev_w = 50

model = dict(
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
        bev_h=bev_h, bev_w=bev_w, embed_dims=embed_dims, num_feature_levels=1, num_layers=3,
        legacy=dict(),
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims),
            cross_attn_cfg=dict(embed_dims=embed_dims,
                                deformable_attention=dict(embed_dims=embed_dims, num_levels=1)),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=ffn_dims))),
    heads=dict(
        det=dict(
            embed_dims=embed_dims, num_query=100, bev_h=bev_h, bev_w=bev_w, legacy=dict(),
            decoder=dict(
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=embed_dims),
                    cross_attn_cfg=dict(embed_dims=embed_dims),
                    ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=ffn_dims))))))

default_hooks = dict(visualization=dict(type='BEVVisualizationHook'))
