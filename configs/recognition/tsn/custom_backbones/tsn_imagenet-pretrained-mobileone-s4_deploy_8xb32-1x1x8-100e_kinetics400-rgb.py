# MMAction2 1.x: TSN MobileOne-S4 in deploy form (each block's branches fused into one conv). Its checkpoint
# is the model-zoo one re-parameterized (MMAction2's tools/convert/reparameterize_model.py, or
# engines.models.mobileone.MobileOne.switch_to_deploy on the train-form model, then
# engines.checkpoint.save_checkpoint).
_base_ = ["tsn_imagenet-pretrained-mobileone-s4_8xb32-1x1x8-100e_kinetics400-rgb.py"]

load_from = None
model = dict(backbone=dict(deploy=True))
