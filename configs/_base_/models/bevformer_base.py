# The BEVFormer model with the original's base settings (R101-DCN caffe backbone, FPN with
# 4 levels into spatial cross-attention, BEV 200x200, 6 + 6 layers, 900 queries).
# Model only: configs/bevformer/*.py add the data, schedule and runtime.
# Sizes are stated once: the encoder's bev_h / bev_w / embed_dims / pc_range reach its layers
# and the heads (the detector fills them in); the decoder layers take the head's width.
embed_dims = 256
ffn_dims = 512
num_levels = 4

model = dict(
    type='BEVFormer',
    use_grid_mask=True,
    video_test_mode=True,
    # The one place images are normalised (caffe-style weights: BGR, mean subtraction only)
    # and padded.
    data_preprocessor=dict(type='BEVDataPreprocessor', mean=[103.530, 116.280, 123.675],
                           std=[1.0, 1.0, 1.0], bgr_to_rgb=False, pad_size_divisor=32),
    img_backbone=dict(
        type='ResNet',
        depth=101,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN2d', requires_grad=False),
        norm_eval=True,
        style='caffe',
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, False, True, True)),
    img_neck=dict(
        type='FPN',
        in_channels=[512, 1024, 2048],
        out_channels=embed_dims,
        start_level=0,
        add_extra_convs='on_output',
        num_outs=num_levels,
        relu_before_extra_convs=True),
    bev_encoder=dict(
        type='BEVFormerEncoder',
        bev_h=200,
        bev_w=200,
        pc_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0],  # as the data's point_cloud_range
        num_points_in_pillar=4,
        num_cams=6,
        num_feature_levels=num_levels,
        embed_dims=embed_dims,
        num_layers=6,
        use_can_bus=True,
        layer_cfg=dict(
            self_attn_cfg=dict(num_heads=8, num_levels=1, num_points=4, dropout=0.1),
            cross_attn_cfg=dict(dropout=0.1,
                                deformable_attention=dict(num_heads=8, num_points=8)),
            ffn_cfg=dict(feedforward_channels=ffn_dims, ffn_drop=0.1),
            with_cp=False)),
    heads=dict(
        det=dict(
            type='BEVFormerHead',
            num_classes=10,
            num_query=900,
            with_box_refine=True,
            sync_cls_avg_factor=True,
            code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2],
            decoder=dict(
                type='BEVDetectionDecoder',
                num_layers=6,
                layer_cfg=dict(
                    self_attn_cfg=dict(num_heads=8, dropout=0.1),
                    cross_attn_cfg=dict(num_heads=8, num_levels=1, num_points=4, dropout=0.1),
                    ffn_cfg=dict(feedforward_channels=ffn_dims, ffn_drop=0.1))),
            bbox_coder=dict(
                type='NMSFreeCoder',
                num_classes=10,
                max_num=300,
                post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=2.0),
            loss_bbox=dict(type='L1Loss', loss_weight=0.25),
            train_cfg=dict(
                assigner=dict(
                    type='HungarianAssigner3D',
                    match_costs=[
                        dict(type='FocalLossCost', weight=2.0),
                        dict(type='BBox3DL1Cost', weight=0.25)
                    ])),
            # NMS-free as the original; e.g. dict(type='soft_nms', iou_threshold=0.5,
            # method='gaussian', sigma=0.5, min_score=0.01, max_per_img=300) adds BEV Soft-NMS.
            test_cfg=dict(nms=None))))
