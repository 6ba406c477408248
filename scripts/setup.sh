#!/usr/bin/env bash
# Create a virtual environment with tosc-sionna installed from this clone.
#
#   bash scripts/setup.sh VENV_DIR [--line torch|tensorflow] [--dev] [--cache]
#
#   --line   the Sionna line: torch (default: Sionna 2.x on PyTorch, Keras' torch
#            backend) or tensorflow (Sionna 1.2 on TensorFlow).
#   --cache  also install the teacher side (torch + transformers).
#   --dev    test and lint tools; implies --cache (the test suite covers both sides).
#
# torch is installed first, pinned ($TORCH_SPEC, default torch==2.13.0), so pip
# never pulls a multi-GB CUDA build through a bare requirement. Where apt-get
# exists and Fashion-MNIST is missing, installs Debian's dataset-fashion-mnist
# (as root, or through sudo).
set -euo pipefail

venv=${1:?usage: bash scripts/setup.sh VENV_DIR [--line torch|tensorflow] [--dev] [--cache]}
shift
line=torch
extras=()
want_cache=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) extras+=(dev); want_cache=1 ;;
    --cache) want_cache=1 ;;
    --line) line=${2:?--line needs torch or tensorflow}; shift ;;
    --line=*) line=${1#--line=} ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$line" in
  torch|tensorflow) extras+=("$line") ;;
  *) echo "setup.sh: --line must be torch or tensorflow; got $line" >&2; exit 2 ;;
esac
[ "$want_cache" = 1 ] && extras+=(cache)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --upgrade pip
if [ "$want_cache" = 1 ] || [ "$line" = torch ]; then
  "${pip[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
fi
"${pip[@]}" install -e "$here[$(IFS=,; echo "${extras[*]}")]"

data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/t10k-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null 2>&1; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "setup.sh: installing Debian's dataset-fashion-mnist" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
echo "setup.sh: ready ($line line): $venv" >&2
