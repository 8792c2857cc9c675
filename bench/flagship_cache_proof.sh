#!/bin/bash
# The flagship's cache proof (issue 9): run examples/recsys from Python, then from YAML (every
# cacheable step is a hit), then a copy of the folder with one constant the global model reads
# changed (GLOBAL_REG_USER): only train_global and what its output reaches execute, and
# `kaon explain` names the constant. Run from the repository root with PYTHONPATH=$PWD/src.
set -euo pipefail
ROOT=$(pwd)
K="$ROOT/.venv/bin/kaon"
PY="$ROOT/.venv/bin/python"
T=$(mktemp -d /tmp/kaon-cache-proof.XXXX)
trap 'rm -rf "$T"' EXIT
cp -r examples/recsys "$T/v1"; rm -rf "$T/v1/published"
cp -r "$T/v1" "$T/v2"
sed -i 's/^GLOBAL_REG_USER, GLOBAL_REG_ITEM = 5.0, 5.0/GLOBAL_REG_USER, GLOBAL_REG_ITEM = 6.0, 5.0/' \
  "$T/v2/pipeline.py"
cd "$T"
export KAON_HOME="$T/home" KAON_CACHE_DIR="$T/cache" KAON_EXECUTOR="${KAON_EXECUTOR:-process}"
tasks() {
  "$PY" - "$1" <<'PYEOF'
import collections, sys
from kaon.service import LocalService, Settings
with LocalService(Settings.from_env()) as service:
    rows = [r for r in service.store.step_runs(sys.argv[1], all_levels=True) if r.kind == "task"]
    print("  ", dict(collections.Counter(r.status.value for r in rows)))
    for r in rows:
        if r.status.value != "cached":
            print("    executed:", r.path)
PYEOF
}
timed() { local s e; s=$(date +%s.%N); "$@" > out.txt 2>&1; e=$(date +%s.%N); head -1 out.txt; echo "$e - $s" | bc >&2; }
echo "python front end:"; R1=$(timed "$K" run v1/flow.py); tasks "$R1"
echo "yaml front end:"; R2=$(timed "$K" run v1/recsys.yaml); tasks "$R2"
echo "yaml, GLOBAL_REG_USER changed:"; R3=$(timed "$K" run v2/recsys.yaml); tasks "$R3"
"$K" explain "$R3" "retrain[0].train_global"
