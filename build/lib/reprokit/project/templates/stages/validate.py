"""validate: embed the validation split; write retrieval metrics, per-query table, CMC curve.

The stage's entry point, called by dvc.yaml; the work is in reprokit.pipeline.validate.
"""

from reprokit.pipeline.validate import main

if __name__ == "__main__":
    main()
