"""prepare: generate the embedded default dataset (distorted digits) into data/digits/.

The stage's entry point, called by dvc.yaml; the work is in reprokit.pipeline.prepare.
"""

from reprokit.pipeline.prepare import main

if __name__ == "__main__":
    main()
