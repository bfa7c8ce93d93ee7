#!/usr/bin/env bash
# The GPU measurement of issue 12, in one run on a machine with an NVIDIA GPU (Volta or later):
# energyd probe, a recording of what NVML answers to energyd's GPU path (the replay fixture
# format), a short `energyd run` with its /metrics, and the two GPU profiles
# (`adapter profile --device cuda`, video and nlp). Everything goes to $OUT (8 files at most).
#
#   scripts/gpu-measure.sh wheels   # HERE, with pip and a network: the wheels the GPU machine lacks,
#                                   # into .whl/ (git-ignored through .git/info/exclude)
#   scripts/gpu-measure.sh run      # THERE: the measurement (estimated 6 minutes on an H200)
#
# docs/profiles.md ("Measuring on a GPU") says how to run it through the device tool and what to
# commit from its output. The GPU machine needs python3 with torch (CUDA), torchvision, pyyaml,
# prometheus-client, psutil and nvidia-ml-py; pydantic comes from .whl/ when it is missing there.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0)

wheels() {
    mkdir -p .whl
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
    # The GPU machine's python3 is CPython 3.12 on x86-64.
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
    ls -l .whl
}

run() {
    OUT=${OUT:-$REPO/gpu-measure-out}
    mkdir -p "$OUT"
    exec > >(tee "$OUT/log.txt") 2>&1
    export PYTHONUNBUFFERED=1 CUDA_DEVICE_ORDER=PCI_BUS_ID
    if ! "$PY" -c 'import pydantic' 2>/dev/null; then
        [ -d .whl ] || { echo "pydantic is missing: carry .whl (scripts/gpu-measure.sh wheels)"; exit 2; }
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-measure-site .whl/*.whl
        export PYTHONPATH=/tmp/gpu-measure-site
    fi
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    started=$(date +%s)
    step() { echo "== $(( $(date +%s) - started )) s: $*"; }

    step "versions"
    "$PY" -c 'import sys, torch, torchvision, pynvml; print(sys.version.split()[0], "torch", torch.__version__,
        "cuda", torch.version.cuda, "torchvision", torchvision.__version__, "GPU", torch.cuda.get_device_name(0))' \
        || echo "versions: see the error above"
    nvidia-smi -q >"$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed (see nvidia-smi.txt)"

    step "energyd probe"
    "$PY" -m energyd probe --gpu auto >"$OUT/probe.txt" 2>&1 || true
    cat "$OUT/probe.txt"

    step "recording NVML through energyd's GPU path (20 s, GPU 0 loaded for the first 8 s)"
    "$PY" -m energyd.gpu_record --out "$OUT/nvml-recording.json" --summary "$OUT/record-summary.json" \
        --seconds 20 --interval 1 --load-s 8 || echo "recording failed (record-summary.json says why)"

    step "energyd run --gpu auto for 8 s, then its /metrics"
    cgroup=/sys/fs/cgroup
    if [ ! -e $cgroup/cgroup.controllers ] && [ ! -d $cgroup/cpuacct ] && [ ! -d $cgroup/cpu,cpuacct ]; then
        cgroup=$(mktemp -d) && touch "$cgroup/cgroup.controllers"  # no pods here: an empty v2 root
    fi
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$PY" -m energyd run --gpu auto --source auto --host 127.0.0.1 --port "$port" --interval 1 --cgroup-root "$cgroup" &
    daemon=$!
    sleep 8
    "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$port/metrics" >"$OUT/metrics.txt" 2>&1 || echo "no /metrics (see log)"
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" || true
    grep -E '^energyd_(node_energy|gpu_info|source_info|pod_energy|unattributed)' "$OUT/metrics.txt" | grep -v '^#' | head -40 || true

    # 16 variants x 7 batch sizes, 0.5 s warm-up + 1.5 s per point, 5 s idle before and after.
    for pipeline in video nlp; do
        step "adapter profile --device cuda --pipeline $pipeline"
        "$PY" -m adapter.profiler profile --device cuda --pipeline "$pipeline" --name "$pipeline-gpu" \
            --duration-s 1.5 --warmup-s 0.5 --idle-s 5 --out "$OUT/$pipeline-gpu.yaml" \
            --note "measured by scripts/gpu-measure.sh" || echo "profile $pipeline failed (see above)"
    done
    step "done; files in $OUT"
    ls -l "$OUT"
}

case "${1:-run}" in
    wheels) wheels ;;
    run) run ;;
    *) echo "usage: $0 [wheels|run]" >&2; exit 2 ;;
esac
