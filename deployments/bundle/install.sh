#!/bin/sh
# Install mlops-onprem from this bundle without any network: every package comes from wheels/
# beside this script (pip/uv never consult an index), each checked against requirements.lock's
# hashes, then the project wheel (checked against SHA256SUMS) without resolving anything again.
#
#   ./install.sh [VENV_DIR]      default: ./venv beside this script
#
# PYTHON=/path/to/python3.11     the interpreter (default: python3.11); it must be CPython 3.11
# UV=/path/to/uv                 install with uv instead of pip (about 5x faster; optional)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-"$here/venv"}
python=${PYTHON:-python3.11}

"$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
    echo "install.sh: $python is not Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
(cd "$here" && sha256sum -c --quiet SHA256SUMS) || {
    echo "install.sh: the project wheel does not match SHA256SUMS" >&2; exit 1; }
set -- "$here"/mlops_onprem-*.whl
project_wheel=$1
start=$(date +%s)

# the lock is complete (every transitive pin, with hashes): nothing is resolved here (--no-deps)
if [ -n "${UV:-}" ]; then
    "$UV" venv --quiet --no-config --offline --python "$python" "$venv"
    "$UV" pip install --quiet --no-config --offline --no-index --python "$venv/bin/python" \
        --find-links "$here/wheels" --require-hashes --no-deps -r "$here/requirements.lock"
    "$UV" pip install --quiet --no-config --offline --no-index --python "$venv/bin/python" \
        --no-deps "$project_wheel"
else
    "$python" -m venv "$venv"
    # --isolated: no pip configuration of the host (index, extra find-links) takes part
    "$venv/bin/python" -m pip --isolated install --quiet --disable-pip-version-check \
        --no-index --find-links "$here/wheels" --require-hashes --no-deps -r "$here/requirements.lock"
    "$venv/bin/python" -m pip --isolated install --quiet --disable-pip-version-check \
        --no-index --no-deps "$project_wheel"
fi

echo "mlops-onprem installed in $venv in $(( $(date +%s) - start )) s (offline, from $here)"
echo "next: $venv/bin/mlops doctor    (deployments/README.md: pointing it at the servers)"
