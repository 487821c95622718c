"""The maintainers' stack: training data, xtuner fine-tuning, merge and quantisation (see docs/training.md)."""
