"""RewardOps: the Skywork-Reward-V2 recipe as a reward-model MLOps platform."""

__version__ = "0.1.0"
