"""Kubernetes side of RewardOps.

- `trainjob`: Kubeflow Trainer v2 TrainJob manifests for catalog sizes (validated by `schema`
  against the vendored CRD schema in `crds/`).
- `launcher`: create a TrainJob, wait, stream node-0's log, report progress, clean up.
- `dataversion`: the data version (DVC hash or content hash) that keys pipeline caching.
- `steps`, `curation_steps`: what the KFP components in `components/` call.
- `images`: the component and training image names.
- `tools`: pinned helm / kubectl binaries (deployment tests).
"""
