#!/usr/bin/env bash
# Create .venv with the pinned OpenMMLab stack (requirements.txt).
# Idempotent: when requirements.txt and this script are unchanged and the stack
# imports, it returns in seconds. mmcv is compiled from source with its ops
# (about 7 minutes on 2 cores the first time; pip's wheel cache makes it fast after).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
STAMP="$VENV/.setup-stamp"
WANT=$(cat requirements.txt tools/setup.sh | sha256sum | cut -d' ' -f1)
say() { echo "[setup] $*"; }
check() {
  "$VENV/bin/python" - <<'PY'
import mmcv, mmdet, mmengine, torch, nuscenes, pycocotools, pkg_resources  # noqa: F401 (mmengine needs pkg_resources)
from mmcv.ops import MultiScaleDeformableAttention, nms  # fails when mmcv was built without ops
import mmcv.ops  # noqa: F401
assert mmcv.__version__ == '2.1.0', mmcv.__version__
assert mmengine.__version__ == '0.10.7', mmengine.__version__
assert mmdet.__version__ == '3.3.0', mmdet.__version__
PY
}

# Our CPU kernel of multi-scale deformable attention (projects/deformable_detr/ops/csrc),
# compiled once per machine into torch's extension cache (~40 s; a no-op when cached, rebuilt
# when the source changes). Without it the op falls back to its slower PyTorch path.
kernel() {
  if "$VENV/bin/python" -c "from projects.deformable_detr.ops.cpu_kernel import build_kernel; build_kernel()"; then
    say "CPU deformable-attention kernel ready"
  else
    say "WARNING: the CPU deformable-attention kernel did not build (see above); the slower PyTorch op will be used"
  fi
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && check 2>/dev/null; then
  say "$VENV is up to date"
  kernel
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -c requirements.txt)
# -c: every step respects the pins (otherwise e.g. opencv drags in numpy 2).
# The CPU torch wheel lies on this machine's disk; use it when present.
[ -d /opt/wheels ] && PIP+=(--find-links /opt/wheels)
req() { grep -E "^$1([=<>! ]|$)" requirements.txt | head -n1; }

say "1/4 torch ($(req torch))"
"${PIP[@]}" -q "$(req torch)" "$(req numpy)"
"$VENV/bin/python" -c "import torch; print('[setup] torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"

say "2/4 mmengine"
"${PIP[@]}" -q wheel ninja "$(req mmengine)"

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  say "3/4 mmcv 2.1.0 with ops already installed"
else
  say "3/4 building $(req mmcv) from source with its ops (MMCV_WITH_OPS=1, MAX_JOBS=2; ~7 min the first time)"
  # mmcv 2.1.0's setup.py needs setuptools<70; step 4 moves it back to the pinned range.
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q 'setuptools<70'
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" -q --no-build-isolation "$(req mmcv)"
  # The build silently skips the ops when torch is missing from the build environment.
  "$VENV/bin/python" -c "import mmcv.ops; from mmcv.ops import MultiScaleDeformableAttention" \
    || { say "mmcv was built without its compiled ops"; exit 1; }
fi

say "4/4 the rest of requirements.txt"
"${PIP[@]}" -q -r requirements.txt
check
echo "$WANT" > "$STAMP"
kernel
say "done: $VENV ($("$VENV/bin/python" -c 'import torch, mmcv, mmdet, mmengine; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmengine {mmengine.__version__}")'))"
