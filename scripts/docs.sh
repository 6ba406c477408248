#!/usr/bin/env bash
# Build the documentation site: warnings are errors.
#
#   bash scripts/docs.sh [VENV]
#
# VENV: the environment whose Python builds (and autodoc imports tosc_sionna
# from; either Sionna line); default .venv if it exists, else python3. Installs
# the docs extra there only when Sphinx or myst-nb is missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ $# -gt 0 ]; then
  python=$(cd "$1" && pwd)/bin/python  # VENV as given, from the caller's directory
elif [ -x "$here/.venv/bin/python" ]; then
  python=$here/.venv/bin/python
else
  python=python3
fi
cd "$here"

if ! "$python" -c "import sphinx, myst_nb" >/dev/null 2>&1; then
  echo "docs.sh: installing the docs extra into $("$python" -c 'import sys; print(sys.prefix)')" >&2
  "$python" -m pip --quiet --disable-pip-version-check install -e ".[docs]"
fi

out=docs/_build/html
"$python" -m sphinx -W --keep-going -b html docs "$out"
echo "docs.sh: the site is in $here/$out (open index.html)" >&2
