"""report: write runs/report/index.html, one self-contained page for the pipeline run (open it in a browser).

The stage's entry point, called by dvc.yaml; the work is in reprokit.pipeline.report.
"""

from reprokit.pipeline.report import main

if __name__ == "__main__":
    main()
