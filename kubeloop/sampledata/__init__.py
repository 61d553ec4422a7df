"""Synthetic data for the demo and the tests: events and delayed labels (`generate`), the
FeatureViews over them (`feature_views`) and inference traffic drawn from them (`traffic`,
`requests`). The YAML that uses it lives in examples/."""
