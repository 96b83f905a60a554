#!/usr/bin/env bash
# Set up edsr-lab in ./.venv: PyTorch first (pinned), then the package and its tools.
#
#   bash scripts/setup.sh            # CPU or GPU machine
#   EDSR_LAB_TORCH="torch==2.5.1" bash scripts/setup.sh   # another torch build you need
#   EDSR_LAB_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" \
#       bash scripts/setup.sh                              # CPU-only: no CUDA libraries
#
# Why torch is installed first and pinned: an unpinned `torch` may pull a multi-GB build
# that does not match the machine. torch==2.13.0 is the version the course is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
torch_spec=${EDSR_LAB_TORCH:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
echo "== installing $torch_spec"
# Unquoted on purpose: EDSR_LAB_TORCH may carry pip options such as --index-url.
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet --disable-pip-version-check $torch_spec
echo "== installing edsr-lab (editable) with notebook and test tools"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
.venv/bin/python -c "import torch, edsr_lab; print('== ready: edsr_lab', edsr_lab.__version__, '| torch', torch.__version__, '| CUDA', torch.cuda.is_available())"
