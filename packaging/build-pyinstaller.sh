#!/usr/bin/env bash
# Build the stand-alone one-folder cnnviz with PyInstaller: dist/cnnviz/cnnviz.
# Needs PyInstaller in the build environment: pip install -e ".[packaging]".
# Usage: packaging/build-pyinstaller.sh   (PYTHON=/path/to/python to use another environment)
# The folder holds torch and its libraries, so expect several gigabytes with the CUDA torch
# wheels from PyPI (CPU-only torch wheels make it much smaller).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "build-pyinstaller: error: PyInstaller is not installed for $PYTHON; run: $PYTHON -m pip install -e '.[packaging]'" >&2
    exit 2
fi
if [ ! -f packaging/icons/cnnviz.ico ] || [ ! -f packaging/icons/cnnviz.icns ]; then
    # Only Windows and macOS put an icon into the executable; elsewhere a missing one is no reason to stop.
    "$PYTHON" packaging/make-icons.py >/dev/null ||
        echo "build-pyinstaller: warning: could not generate packaging/icons; building without an icon" >&2
fi

start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/cnnviz.spec
echo "build-pyinstaller: built in $(( $(date +%s) - start )) s"

# The frozen program must at least run its command line without the build environment.
env -i PATH=/usr/bin:/bin HOME="${HOME:-/tmp}" dist/cnnviz/cnnviz --version
echo "build-pyinstaller: $(du -sh dist/cnnviz | cut -f1) in dist/cnnviz (start it with dist/cnnviz/cnnviz)"
