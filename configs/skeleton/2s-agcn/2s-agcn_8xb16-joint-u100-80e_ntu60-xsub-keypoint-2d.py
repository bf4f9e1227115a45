# MMAction2 1.x model zoo: 2s-AGCN, joint features of COCO-17 2D keypoints, NTU RGB+D 60 x-sub
# (model, test pipeline and test dataset only).
_base_ = ["../../_base_/models/2s-agcn.py"]

load_from = (
    "https://download.openmmlab.com/mmaction/v1.0/skeleton/2s-agcn/"
    "2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d/"
    "2s-agcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d_20221222-4c0ed77e.pth"
)

dataset_type = "PoseDataset"
ann_file = "data/skeleton/ntu60_2d.pkl"

# MMAction2's test protocol: 10 clips of 100 frames, sampled uniformly over the whole sequence;
# two people per clip. The model folds the clips' softmax scores (GCNHead average_clips='prob').
test_pipeline = [
    dict(type="PreNormalize2D"),
    dict(type="GenSkeFeat", dataset="coco", feats=["j"]),
    dict(type="UniformSampleFrames", clip_len=100, num_clips=10, test_mode=True),
    dict(type="PoseDecode"),
    dict(type="FormatGCNInput", num_person=2),
    dict(type="PackActionInputs"),
]

test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file, pipeline=test_pipeline, split="xsub_val", test_mode=True),
)
