"""Evaluation: chunked exact kNN, retrieval metrics, the DDP gather, the validation writer."""
