"""train: fit the embedding model; write runs/train/ (model, loss statistics, curves, artifacts).

The stage's entry point, called by dvc.yaml; the work is in reprokit.pipeline.train.
"""

from reprokit.pipeline.train import main

if __name__ == "__main__":
    main()
