"""mirror: replay runs/train, runs/validate, runs/visualize and runs/report into the configured logger.

The stage's entry point, called by dvc.yaml; the work is in reprokit.pipeline.mirror.
"""

from reprokit.pipeline.mirror import main

if __name__ == "__main__":
    main()
