"""Entry point of the stand-alone (PyInstaller) build: the same as the `cnnviz` console script."""

import multiprocessing
import sys

from cnnviz.cli import main

if __name__ == "__main__":
    # Worker processes of a frozen program re-run this file; freeze_support() routes them.
    multiprocessing.freeze_support()
    sys.exit(main())
