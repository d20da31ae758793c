"""visualize: draw the worst queries (by visualize.metric) with their retrieved items.

The stage's entry point, called by dvc.yaml; the work is in reprokit.pipeline.visualize.
"""

from reprokit.pipeline.visualize import main

if __name__ == "__main__":
    main()
