"""Evaluation: chunked exact kNN, retrieval metrics (OML's and PML's), the DDP gather, the validation writer."""
