"""The KFP shell: components (`components/`), pipelines (one module each), and their CLI (`commands`).

Everything here calls the library (`rewardops.data`, `.curation`, `.training`, `.evaluation`,
`.tracking`, `.k8s`); nothing in the library imports this package. `registry` lists the pipelines.
"""
