# Ablation: no temporal information (BEVFormer-S style): single-frame training and testing,
# temporal self-attention sees the current queries only.
_base_ = '../bevformer_tiny.py'
model = dict(video_test_mode=False)
train_dataloader = dict(dataset=dict(queue_length=1))
