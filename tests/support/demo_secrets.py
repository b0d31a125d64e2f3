"""Secret markers for the one small demo the test session runs (tests/conftest.py `checkout`)."""

# Every credential variable the code (or a library it drives: boto3/DVC, MLflow, Label Studio, the
# LLM judge client, KFP, huggingface_hub, psql) reads, each set to its own marker for the one small
# demo run the session makes; test_no_secrets_in_outputs.py looks for the markers in what it left.
DEMO_SECRET_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "LABEL_STUDIO_API_KEY", "REWARDOPS_LABELSTUDIO_TOKEN",
    "REWARDOPS_LLM_API_KEY", "OPENAI_API_KEY", "KFP_TOKEN", "PGPASSWORD", "HF_TOKEN",
)
DEMO_SECRETS = {var: f"SeCrEt-{i:02d}-9c4e-MaRkEr" for i, var in enumerate(DEMO_SECRET_VARS)}

# A team's data registry has hosted remotes whose URLs may carry a token: the demo's registry gets
# a git `origin` and a (non-default, `--local`) DVC remote with these markers in their userinfo
# before the run (conftest.py `checkout`). The places they are planted in are the only places they
# may be found afterwards (DEMO_REMOTE_PLANTED, relative to demo-out/).
DEMO_REMOTE_TOKENS = {"data registry git remote": "SeCrEt-git-9c4e-MaRkEr",
                      "data registry DVC remote": "SeCrEt-dvc-9c4e-MaRkEr"}
DEMO_GIT_REMOTE = ("https://rewardops-bot:" + DEMO_REMOTE_TOKENS["data registry git remote"]
                   + "@git.example.invalid/team/data-registry.git")
DEMO_DVC_REMOTE = ("https://rewardops-bot:" + DEMO_REMOTE_TOKENS["data registry DVC remote"]
                   + "@dvc.example.invalid/team/store")
DEMO_REMOTE_PLANTED = ("data-registry/.git/config", "data-registry/.dvc/config.local",
                       "data-registry: git config --list")
