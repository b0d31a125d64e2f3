"""KFP v2 components, one per RewardOps step; each is a thin wrapper over the library.

Images: every component runs in the CPU component image (`rewardops.k8s.images.component_image()`,
built from infra/Dockerfile.component); `train_launcher` starts TrainJobs that run the training
image (`training_image()`, infra/Dockerfile.training). Each component takes `data_version` (the
DVC hash or content hash of its input data) so KFP's cache key changes when the data does.
"""
