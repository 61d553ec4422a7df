"""The Experiment kind: `handlers.register` wires it into an operator (see operators.main)."""
