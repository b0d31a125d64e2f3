"""Kubernetes side of RewardOps: job specs and launching only.

- `trainjob`: Kubeflow Trainer v2 TrainJob manifests for catalog sizes (validated by `schema`
  against the vendored CRD schema in `crds/`), the accelerator settings and the size plan.
- `launcher`: attach to or create a TrainJob, wait, stream node-0's log, report progress; the
  trained model's version from MLflow.
- `images`: the component and training image names.
- `tools`: pinned helm / kubectl binaries (deployment tests, infra/bootstrap.sh).
"""
