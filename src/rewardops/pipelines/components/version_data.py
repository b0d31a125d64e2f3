"""version_data: version a dataset in the DVC data registry before the step that reads it."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def version_data(
    dataset: Input[Dataset],
    name: str,
    registry: str,
    remote: str,
    data_version: str,
    versioned: Output[Dataset],
):
    """Commit `dataset` to the DVC data registry folder `registry` as `name` (`dvc add`, a git commit
    when it changed, `dvc push` to the folder remote `remote`, stored relative to the registry).
    The output holds the same files plus `dvc.json` (registry, commit, path, md5, rows): training
    on it records that DVC location as the run's lineage tags and MLflow dataset input, and
    `rewardops data get --model ...` brings the exact rows back. An empty `registry` only passes
    the data through (no lineage)."""
    import json
    import os
    import shutil
    from pathlib import Path

    from rewardops.outputs import atomic_output
    from rewardops.pipelines.steps import begin_step

    begin_step(f"version-{name}", data_version)
    source = Path(dataset.path)
    found = None
    if registry:
        from rewardops.tracking.data_registry import version_dataset

        run = os.environ.get("REWARDOPS_PIPELINE_RUN_ID", "a pipeline run")
        found = version_dataset(Path(registry), name, source, Path(remote or Path(registry).parent / "dvc-remote"),
                                message=f"{name} from {run} (data version {data_version})")
    with atomic_output(Path(versioned.path), inputs=(source,), kind="dataset") as tmp:
        for item in source.iterdir():
            if item.name == "_manifest.json" or item.name.startswith("."):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        if found is not None:
            (tmp / "dvc.json").write_text(json.dumps(found.as_dict(), indent=1) + "\n")
    versioned.metadata.update({"data_version": data_version, **(found.as_dict() if found else {})})
    print(f"[version_data] {name}: {found.as_dict() if found else 'not versioned (no registry)'}", flush=True)
