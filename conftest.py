"""Fixtures for every test folder (tests/, kubeloop/, components/, pipelines/, services/,
localcluster/): the harness's pytest plugins (tests/support/)."""

pytest_plugins = ["tests.support.localcluster", "tests.support.mlflow", "tests.support.stack"]
