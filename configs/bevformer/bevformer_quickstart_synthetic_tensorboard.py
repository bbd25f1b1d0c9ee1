# The quickstart, watched in TensorBoard: loss terms, learning rate, NDS / mAP / TP errors and
# pictures of validation predictions (GT green, predictions red, six cameras + BEV) go to every
# vis backend; TensorBoard's event file lands in <work_dir>/<timestamp>/vis_data/ beside the
# local scalars.json and vis_image/*.png.
#   .venv/bin/pip install -c requirements.txt -r requirements/optional.txt   # tensorboard
#   .venv/bin/python tools/train.py configs/bevformer/bevformer_quickstart_synthetic_tensorboard.py
#   .venv/bin/tensorboard --logdir work_dirs/bevformer_quickstart_synthetic_tensorboard
# The same three settings work on top of any config. Weights & Biases instead (pip install
# wandb): dict(type='WandbVisBackend', init_kwargs=dict(project='bevformer')).
_base_ = './bevformer_quickstart_synthetic.py'

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(vis_backends=vis_backends)
default_hooks = dict(
    # pictures of the first sample of every 10th validation batch, at each validation
    visualization=dict(draw=True, interval=10, score_thr=0.2),
    # metrics at the iteration they were measured (the base config already says so)
    logger=dict(log_metric_by_epoch=False))
train_cfg = dict(val_interval=100)  # three validations in the 300 iterations
