"""Fixtures for every test folder (tests/, components/, pipelines/, services/, localcluster/)."""

pytest_plugins = ["localcluster.testing", "tests.mlflow_server"]
