"""Training data: incremental-pretraining chunks, self-cognition pairs and RAG-grounded QA, in xtuner's format."""
