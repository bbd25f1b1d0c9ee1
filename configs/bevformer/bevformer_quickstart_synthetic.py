# The CPU quickstart on the synthetic nuScenes dataroot (tools/quickstart.sh):
# BEVFormer-tiny's structure, shrunk so a laptop CPU trains it in minutes.
# a half-width ResNet-18, C4+C5 through a 2-level FPN, 320x180 images, BEV 32x32 over the
# usual +-51.2 m, 64-d transformer, 2 encoder and 3 decoder layers, 200 queries, a 2-frame
# queue (one history frame).
# The recipe (each choice measured, issue 13's note): 40 training scenes (on mini's 8 the model
# memorises them); the backbone and neck start from the shipped perspective pretraining
# (checkpoints/README.md, as the original starts small / base from FCOS3D) and train on with a
# perspective head on the image features (BEVFormer v2's perspective supervision, its losses in
# training only); the BEV encoder and the heads train from scratch, the detection queries
# taken from the peaks of a BEV heatmap (query_init, TransFusion-style) whose dense loss teaches
# the encoder where objects are.
_base_ = [
    '../_base_/datasets/nuscenes_synthetic.py', '../_base_/models/bevformer_base.py',
    '../_base_/schedules/adamw_cosine_24e.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['projects.bevformer'], allow_failed_imports=False)

embed_dims = 64
# backbone + neck after the perspective pretraining stage (checkpoints/README.md)
pretrained = '{{ fileDirname }}/../../checkpoints/quickstart_perspective_backbone-a1aa259b.pth'

model = dict(
    # RGB, ImageNet statistics (as in the perspective pretraining)
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    img_backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        base_channels=32,  # half-width ResNet-18: 4x fewer FLOPs on a CPU
        stem_channels=32,
        num_stages=4,
        out_indices=(2, 3),
        # as the original treats its pretrained ResNets: the stem and stage 1 frozen, BatchNorm
        # statistics kept from the pretraining (a training step 1.15-1.25x faster, no loss in
        # NDS: issue 13's note)
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='img_backbone.')),
    img_neck=dict(in_channels=[128, 256], out_channels=embed_dims, num_outs=2,
                  add_extra_convs=False,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='img_neck.')),
    # perspective supervision (training only): per-camera centre heatmap, offset, 2D extent
    # and depth from the 3D boxes projected with lidar2img, on the stride-16 FPN level
    perspective_head=dict(type='PerspectiveHead', in_channels=embed_dims, num_classes=10,
                          feat_channels=64, in_level=0),
    # NHWC images: the CPU convolutions / pooling run in oneDNN's native layout (the training
    # step measured 1.1-1.9x faster, same model; BEVFormer.img_channels_last)
    img_channels_last=True,
    # No dropout in the encoder and decoder (the original's 0.1 regularises a 24-epoch run;
    # in 700 steps it only slows learning: NDS / mAP 0.177 / 0.099 and 0.175 / 0.090 on seeds
    # 0 / 1 against 0.165 / 0.069 and 0.158 / 0.055 with it)
    bev_encoder=dict(
        bev_h=32, bev_w=32, embed_dims=embed_dims, num_feature_levels=2, num_layers=2,
        layer_cfg=dict(self_attn_cfg=dict(dropout=0.0), cross_attn_cfg=dict(dropout=0.0),
                       ffn_cfg=dict(feedforward_channels=2 * embed_dims, ffn_drop=0.0))),
    heads=dict(
        det=dict(
            num_query=200,
            query_init=dict(type='BEVHeatmapQueries'),
            decoder=dict(
                num_layers=3,
                layer_cfg=dict(self_attn_cfg=dict(dropout=0.0), cross_attn_cfg=dict(dropout=0.0),
                               ffn_cfg=dict(feedforward_channels=2 * embed_dims,
                                            ffn_drop=0.0))),
            bbox_coder=dict(max_num=100))))

# Loading a sample takes ~15 ms: data workers would only compete with torch for the cores.
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(queue_length=2))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader

# A short iteration-based schedule: AdamW 2e-3 for the whole model (2e-3 beat 1e-3 at 600
# iterations), warm-up then cosine; 900 iterations (about 0.5 s each with the compiled
# deformable-attention kernel, NHWC images, bf16 autocast and the fused AdamW) fit the
# quickstart (data, training, test, pictures) in about 10 minutes on an idle 2-core machine.
max_iters = 900
optim_wrapper = dict(
    # fused: one kernel per step for all parameters (7 ms a step instead of 26 ms, same update)
    optimizer=dict(lr=2e-3, weight_decay=0.01, fused=True),
    paramwise_cfg=dict(_delete_=True, custom_keys=dict()))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min_ratio=1e-2)
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(
    visualization=dict(type='BEVVisualizationHook'),
    # validation metrics logged at the iteration (TensorBoard / analyze_logs curves), not epoch 0
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=450, max_keep_ckpts=2))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
load_from = None
# a fixed seed: two runs of the quickstart give the same model (--cfg-options randomness.seed=N
# for another draw)
randomness = dict(seed=0)
