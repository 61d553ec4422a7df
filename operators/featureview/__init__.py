"""The FeatureView kind: `handlers.register` wires it into an operator (see operators.main)."""
