# MMAction2's TSN-R50 1x1x8 (the model-zoo design, unchanged: ResNet-50, TSNHead with AvgConsensus,
# 8 segments, Resize(-1, 256) + CenterCrop 224) with 4 classes: the background texture of the
# synthetic scenes (pipelines/demo/synthetic.py: BACKGROUNDS). Trained from scratch by
# `python -m pipelines.demo.train_tsn` so that the TSN-R50 speed figures of `--precision auto`
# (benchmarks/recognition.py) are measured on a trained model: a random-weight TSN-R50 scores its 400
# classes within 0.002 of each other, so `auto`'s agreement check rejects any reduced precision.
# A scene class, not an action: TSN averages per-frame features, so it cannot see the order of frames
# that tells the synthetic actions apart (move_left played backwards is move_right).
_base_ = ["../recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py"]

model = dict(backbone=dict(pretrained=None), cls_head=dict(num_classes=4))

test_pipeline = [
    dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type="Resize", scale=(-1, 256)),
    dict(type="CenterCrop", crop_size=224),
    dict(type="FormatShape", input_format="NCHW"),
    dict(type="PackActionInputs"),
]

dataset_meta = dict(classes=("flat", "blobs", "stripes", "checker"))

# No load_from: the checkpoint is not shipped. `python -m pipelines.demo.train_tsn` writes it to
# ~/.cache/action-stream/models/demo_tsn_r50_scenes.pth (not in git); pass it with --checkpoint.
