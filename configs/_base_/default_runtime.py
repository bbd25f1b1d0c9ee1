# Runtime shared by every config: registries, hooks, logging, checkpoints, environment.
default_scope = 'mmdet'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # max_keep_ckpts bounds disk use; 'last_checkpoint' lets `--resume` find the newest one.
    # (projects.common makes it write the new checkpoint before removing old ones.)
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # Stop at the first NaN / inf loss or gradient (action='skip' drops the iteration).
    finite_check=dict(type='NonFiniteCheckHook', action='raise'),
    # `--resume` restores the Python / numpy / torch RNG states of the checkpoint.
    rng_state=dict(type='RNGStateHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # The backend is chosen by the tools: nccl with CUDA, gloo on CPU.
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
# load_from / tools/test.py checkpoints must fit the model (all keys, all shapes); True
# loads what fits and warns about the rest (e.g. a pretrained backbone): --partial-load.
load_partial = False
resume = False
