"""Traffic generator for the demo: inference requests from the synthetic stream, delayed labels."""
