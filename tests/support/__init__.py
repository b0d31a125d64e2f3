"""Test support: stand-ins and server helpers the tests import as `support.<module>` (no sys.path edits).

- `loopback`: the one loopback HTTP server every stand-in runs on (records calls, checks contracts).
- `contracts`: requests and answers held to the vendored upstream API descriptions (`upstream/`).
- `kube_standin`: the Kubernetes / Trainer / JobSet / scheduler behaviour the launcher relies on.
- `kfp_standin`: the KFP v2beta1 API `rewardops submit` uses.
- `labelstudio_server`, `servers`: real servers the tests start, and waiting for them.
"""
