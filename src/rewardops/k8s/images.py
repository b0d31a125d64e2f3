"""Container images the pipelines run in: one name each, versioned with the package.

`infra/Dockerfile.component` builds the CPU component image and `infra/Dockerfile.training` the
CUDA + DeepSpeed training image. Override the registry or tag with REWARDOPS_IMAGE_REGISTRY /
REWARDOPS_IMAGE_TAG when building pipelines for a private registry.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("rewardops")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def image_registry() -> str:
    return os.environ.get("REWARDOPS_IMAGE_REGISTRY", "ghcr.io/rewardops")


def image_tag() -> str:
    return os.environ.get("REWARDOPS_IMAGE_TAG", package_version())


def component_image() -> str:
    """CPU image with rewardops installed; every KFP component except training runs in it."""
    return f"{image_registry()}/component:{image_tag()}"


TRAINING_IMAGE_ENV = "REWARDOPS_TRAINING_IMAGE"  # set by the chart's client ConfigMap: the image it deployed


def training_image() -> str:
    """CUDA + DeepSpeed image the TrainJob nodes run: the chart's (REWARDOPS_TRAINING_IMAGE) on a
    cluster, else the registry/tag default."""
    return os.environ.get(TRAINING_IMAGE_ENV) or f"{image_registry()}/training:{image_tag()}"
