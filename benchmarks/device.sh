#!/usr/bin/env bash
# One prepared run on a GPU machine (issue 12, item 1): `make device`, or `bash benchmarks/device.sh`.
#
# In this order, within $DEVICE_BUDGET_S seconds of wall time (default 540), each step under its
# own `timeout`, a failing or cut step logged and the next one run all the same:
#   a. chapter 10's protocol at the full profile (`dipkit bench`): set9 denoising (sigma 25),
#      classic5 deblocking (JPEG quality 10), bernoulli11 inpainting, methods paper and dip,
#      seed 0, every image at its native size, --device cuda; one CSV per set, a row appended as
#      soon as it is measured. The sets share the step's time: each gets what is left of it
#      divided by the sets still to run (so one slow set cannot eat the others' time).
#   b. chapter 3's lambda sweep at the full profile (512^2): `dipkit experiments run lipschitz`
#      in pieces of --limit 1 (seed 0 for every lambda first, then seed 1, ...), one record
#      appended to the store per fit, stopping when the next piece (as long as the last one)
#      would not end before the time kept for step c.
#   c. the benchmark suite (`python -m benchmarks.run`, its CUDA sections; the JSON rewritten
#      after each section): probes on the GPU at 256^2 and 512^2; steps/s of the paper's decoder
#      at 256^2 and 512^2 with probes every 1, 10, 100 steps; the fit's variants (channels-last,
#      bf16 autocast, torch.compile default and 'reduce-overhead' = CUDA graphs) against the
#      default with the PSNR after the same steps; fit_many K = 1, 8, 32 against K sequential fits
#      at 256^2; host waits per step between probes (torch.cuda.set_sync_debug_mode); dipkit's
#      fit against a loop doing at every step what the paper's script does, at 512^2. Its
#      "targets" are issue 12's, each with what was measured; summary.txt lists them.
#
# Where things go: $OUT when set (the device machine), else benchmarks/results/device/<stamp>/
# (a dry run without OUT: a new temporary folder). Written as they happen:
#   device.log   progress lines with timestamps (UTC, and seconds since the start)
#   output.log   everything the steps printed
#   set9-denoise.csv, classic5-deblock.csv, bernoulli11-inpaint.csv     (step a)
#   store/<profile>/lipschitz.jsonl                                      (step b: the results store)
#   suite/<device>-<date>.json                                           (step c)
# At the end the CSVs, store/ and suite/ are packed into device-results.tar.gz and summary.txt
# says what each step produced: 4 files under $OUT (the device tool returns at most 8, and at most
# 2 folders deep: the live layout above stays within both, so a run cut short still returns what
# it wrote).
#
# Before the device call, once, in the repository root here (the images, and wheels of what the
# device's python3 3.12 lacks of dipkit's requirements: pooch and platformdirs, which dipkit
# imports; PyWavelets for a noise estimate and pypng for 16-bit PNGs, imported when used):
#   grep -qxF /.data/ .git/info/exclude || echo /.data/ >> .git/info/exclude; mkdir -p .data && cp -r ../shared/data/{set9,classic5,bernoulli11} .data/ && chmod -R u+w .data && python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl pooch==1.9.0 platformdirs==4.14.9 PyWavelets==1.8.0 pypng==0.20220715.0
# (.whl/ is ignored by .gitignore, .data/ through .git/info/exclude only: the images are never
# committed.) The device call:
#   run(command="bash benchmarks/device.sh", carry=[".data", ".whl"], timeout_s=600)
# The script installs into a temporary folder on PYTHONPATH the wheels of the modules missing there.
# Afterwards: store/full/lipschitz.jsonl's lines belong in dipkit/results/full/lipschitz.jsonl
# (the store appends; the last record of a setting wins).
#
# DRY_RUN=1: the same steps on the CPU at toy sizes, into a temporary folder (never dipkit/results):
# 2 images per set resized to a shorter side of 64, 20 steps, the quick profile; 2 pieces of the
# lambda sweep with its budget cut to 20 steps (a quick-profile fit is 2000 steps: minutes on one
# loaded core); `benchmarks.run --quick --budget 4`. Images from $DIPKIT_DATA, by default
# ../shared/data when it exists (CI), else .data/. One thread unless OMP_NUM_THREADS says.
#
# Environment (all optional):
#   OUT                  where results go (see above)
#   DEVICE_BUDGET_S      total seconds (default 540; dry run 300)
#   DEVICE_BENCH_S       seconds of step a (default 35 % of the budget)
#   DEVICE_SUITE_S       seconds kept for step c (default 40 % of the budget)
#   DEVICE_END_S         seconds kept for the summary and packing (default 10)
#   DEVICE_IMAGES        images per set, the first by name (default all; dry run 2)
#   DEVICE_SEEDS         seeds of the lambda sweep, in order (default "0 1 2 3 4"; dry run "0")
#   DEVICE_PIECES        at most this many pieces of the sweep (default no limit; dry run 2)
#   DIPKIT_DATA          the folder holding set9/, classic5/, bernoulli11/ (default .data/)
#   DIPKIT_PYTHON        the interpreter (default .venv/bin/python when present, else python3)
#   DRY_RESIZE, DRY_STEPS, DRY_EXP_STEPS   the dry run's toy sizes (64, 20, 20)
#
# Exit status: 0 when no step failed (a step cut at its time cap is not a failure: it keeps its
# rows); 1 when a step failed; 2 when the run could not start (no CUDA outside a dry run, no dipkit).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

case "${DRY_RUN:-0}" in 0 | "" | no | false) DRY=0 ;; *) DRY=1 ;; esac

# ---- settings -------------------------------------------------------------------------------
if ((DRY)); then
    BUDGET=${DEVICE_BUDGET_S:-300}
    IMAGES=${DEVICE_IMAGES:-2}
    SEEDS=${DEVICE_SEEDS:-0}
    MAX_PIECES=${DEVICE_PIECES:-2}
    MIN_PIECE_S=5
    MIN_SUITE_S=5
    PROFILE=quick
    DEVICE=cpu
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    if [[ -z ${DIPKIT_DATA:-} && -d $ROOT/../shared/data ]]; then
        DIPKIT_DATA=$(cd "$ROOT/../shared/data" && pwd)
    fi
else
    BUDGET=${DEVICE_BUDGET_S:-540}
    IMAGES=${DEVICE_IMAGES:-0}
    SEEDS=${DEVICE_SEEDS:-0 1 2 3 4}
    MAX_PIECES=${DEVICE_PIECES:-0}
    MIN_PIECE_S=30
    MIN_SUITE_S=20
    PROFILE=full
    DEVICE=cuda
fi
DATA=${DIPKIT_DATA:-$ROOT/.data}
BENCH_S=${DEVICE_BENCH_S:-$((BUDGET * 35 / 100))}
SUITE_S=${DEVICE_SUITE_S:-$((BUDGET * 40 / 100))}
END_S=${DEVICE_END_S:-10}

if [[ -n ${DIPKIT_PYTHON:-} ]]; then
    PY=$DIPKIT_PYTHON
elif [[ -x $ROOT/.venv/bin/python ]]; then
    PY=$ROOT/.venv/bin/python
else
    PY=python3
fi

if [[ -n ${OUT:-} ]]; then
    RES=$OUT
elif ((DRY)); then
    RES=$(mktemp -d "${TMPDIR:-/tmp}/dipkit-device-dry.XXXXXX")
else
    RES=$ROOT/benchmarks/results/device/$(date -u +%Y%m%d-%H%M%S)
fi
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
LOG=$RES/device.log
OUTPUT_LOG=$RES/output.log
STORE=$RES/store
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dipkit-device-work.XXXXXX")
export PYTHONUNBUFFERED=1 DIPKIT_RESULTS=$STORE

START=$(date +%s)
DEADLINE=$((START + BUDGET))
FAILED=0

now() { date +%s; }

log() {
    local line
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) +$(($(now) - START))s $*"
    echo "$line" >>"$LOG"
    echo "$line" >&2
}

# run_capped NAME CAP CMD...: CMD under `timeout CAP`, its output appended to output.log; sets
# STATUS (ok, cut or "FAILED (exit N)") and ELAPSED, logs them, and never fails itself.
run_capped() {
    local name=$1 cap=$2 t0 rc=0
    shift 2
    t0=$(now)
    log "$name: start (cap ${cap} s)"
    printf '\n==== %s (cap %s s): %s\n' "$name" "$cap" "$*" >>"$OUTPUT_LOG"
    timeout -k 10 "$cap" "$@" >>"$OUTPUT_LOG" 2>&1 || rc=$?
    ELAPSED=$(($(now) - t0))
    if ((rc == 0)); then
        STATUS=ok
    elif ((rc == 124 || (rc == 137 && ELAPSED >= cap))); then
        STATUS=cut
    else
        STATUS="FAILED (exit $rc)"
    fi
    log "$name: $STATUS after ${ELAPSED} s"
}

# A step's result from its parts: FAILED over cut over ok.
worst() {
    case "$1|$2" in
        FAILED* | *"|FAILED"*) echo FAILED ;;
        cut* | *"|cut"*) echo cut ;;
        *) echo ok ;;
    esac
}

step_done() {  # step_done LETTER STATUS DETAIL
    log "step $1: $2${3:+ ($3)}"
    if [[ $2 == FAILED* ]]; then FAILED=1; fi
}

pack() {
    # Everything but the logs and the summary into one archive; the loose copies go once it exists.
    local items=() f
    for f in set9-denoise.csv classic5-deblock.csv bernoulli11-inpaint.csv store suite; do
        if [[ -e $RES/$f ]]; then items+=("$f"); fi
    done
    if ((${#items[@]})); then
        if tar -czf "$RES/device-results.tar.gz.part" -C "$RES" "${items[@]}"; then
            mv "$RES/device-results.tar.gz.part" "$RES/device-results.tar.gz"
            (cd "$RES" && rm -rf "${items[@]}")
        else
            rm -f "$RES/device-results.tar.gz.part"
            log "packing: tar failed; the results stay loose"
        fi
    fi
    log "packed: $(find "$RES" -type f | wc -l) files under $RES: $(cd "$RES" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
}

cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

log "device run: $( ((DRY)) && echo "DRY RUN (cpu, toy sizes)" || echo "GPU")," \
    "budget ${BUDGET} s (bench ${BENCH_S} s, suite ${SUITE_S} s), results in $RES," \
    "commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"

# ---- 0. the interpreter, dipkit, the GPU ----------------------------------------------------
wheels=() missing=()
for pair in pooch:pooch platformdirs:platformdirs pywt:pywavelets png:pypng; do  # module:wheel
    module=${pair%%:*} wheel=${pair##*:}
    if "$PY" -c "import $module" >/dev/null 2>&1; then continue; fi
    found=0
    for w in "$ROOT"/.whl/*.whl; do
        name=${w##*/}
        if [[ -e $w && ${name,,} == "$wheel"-* ]]; then wheels+=("$w") found=1; fi
    done
    if ((!found)); then missing+=("$module"); fi
done
if ((${#wheels[@]})); then
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$WORK/site" "${wheels[@]}" >>"$OUTPUT_LOG" 2>&1; then
        export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
        log "installed $(printf '%s ' "${wheels[@]##*/}")into $WORK/site"
    else
        log "installing the wheels in .whl/ failed (output.log)"
    fi
fi
if ((${#missing[@]})); then
    log "missing here, and no wheel of it in .whl/: ${missing[*]} (see this script's header)"
fi
if ! info=$("$PY" - 2>>"$OUTPUT_LOG" <<'PY'
import torch, dipkit
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"python {__import__('sys').version.split()[0]}, torch {torch.__version__}, dipkit {dipkit.__version__}, "
      f"cuda {torch.cuda.is_available()} ({gpu}), threads {torch.get_num_threads()}")
PY
); then
    log "step 0: FAILED: $PY cannot import torch and dipkit (output.log says why)"
    exit 2
fi
log "step 0: ok ($info)"
if command -v nvidia-smi >/dev/null 2>&1; then
    log "nvidia-smi: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader 2>&1 | head -1)"
fi
if ((!DRY)) && [[ $info != *"cuda True"* ]]; then
    log "no CUDA GPU here: the full-profile run needs one (DRY_RUN=1 runs the CPU dry run); stopping"
    exit 2
fi

# ---- a. chapter 10's protocol ---------------------------------------------------------------
SETS=(set9 classic5 bernoulli11)
TASKS=(denoise deblock inpaint)
BENCH_DATA=$DATA
if ((IMAGES > 0)); then
    # the first IMAGES images of each set by name (with their masks), in a folder of their own
    BENCH_DATA=$WORK/data
    for s in "${SETS[@]}"; do
        mkdir -p "$BENCH_DATA/$s"
        if [[ ! -d $DATA/$s ]]; then continue; fi
        mapfile -t files < <(find "$DATA/$s" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.bmp' \
            -o -iname '*.jpg' -o -iname '*.tif' -o -iname '*.tiff' \) ! -name '*_mask.*' | sort)
        for f in "${files[@]:0:IMAGES}"; do
            cp "$f" "$BENCH_DATA/$s/"
            for m in "${f%.*}"_mask.*; do
                if [[ -e $m ]]; then cp "$m" "$BENCH_DATA/$s/"; fi
            done
        done
    done
fi
BENCH_END=$((START + BENCH_S))
a_status=ok
a_detail=()
for i in 0 1 2; do
    s=${SETS[i]} t=${TASKS[i]} csv=$RES/${SETS[i]}-${TASKS[i]}.csv
    cap=$(((BENCH_END - $(now)) / (3 - i)))
    if [[ ! -d $DATA/$s ]]; then
        log "step a ($s $t): FAILED: no folder $DATA/$s (DIPKIT_DATA; see this script's header)"
        a_status=FAILED a_detail+=("$s: no images")
        continue
    fi
    if ((cap < 5)); then
        log "step a ($s $t): skipped: ${cap} s left of the step's time"
        a_status=$(worst "$a_status" cut) a_detail+=("$s: no time")
        continue
    fi
    args=(bench "$t" "$s" -o "$csv" --force --methods paper,dip --seeds 0 --profile "$PROFILE"
          --device "$DEVICE")
    if ((DRY)); then args+=(--resize "${DRY_RESIZE:-64}" --steps "${DRY_STEPS:-20}"); fi
    DIPKIT_DATA=$BENCH_DATA run_capped "step a ($s $t)" "$cap" "$PY" -m dipkit "${args[@]}"
    rows=0
    if [[ -f $csv ]]; then rows=$(($(wc -l <"$csv") - 1)); fi
    a_status=$(worst "$a_status" "$STATUS")
    a_detail+=("$s: $rows rows, $STATUS")
done
step_done a "$a_status" "$(printf '%s; ' "${a_detail[@]}" | sed 's/; $//')"

# ---- b. chapter 3's lambda sweep, in pieces -------------------------------------------------
# The dry run shortens the experiment's budget to DRY_EXP_STEPS (a setting of its own, so its
# records never pass for real ones) and runs the same command line through dipkit.cli.main.
SHIM='import dataclasses, os, sys
from dipkit.experiments import EXPERIMENTS
from dipkit.cli import main
e = EXPERIMENTS["lipschitz"]
EXPERIMENTS["lipschitz"] = dataclasses.replace(e, base={**e.base, "steps": int(os.environ["DRY_EXP_STEPS"])})
sys.exit(main(sys.argv[1:]))'
if ((DRY)); then
    export DRY_EXP_STEPS=${DRY_EXP_STEPS:-20}
    EXP=("$PY" -c "$SHIM")
else
    EXP=("$PY" -m dipkit)
fi
EXP+=(experiments run lipschitz --profile "$PROFILE" --device "$DEVICE" --results "$STORE")
records() { if [[ -f $STORE/$PROFILE/lipschitz.jsonl ]]; then wc -l <"$STORE/$PROFILE/lipschitz.jsonl"; else echo 0; fi; }
B_END=$((DEADLINE - SUITE_S - END_S))
b_status=ok pieces=0 last=0 why="the sweep is complete"
for seed in $SEEDS; do
    while :; do
        left=$((B_END - $(now)))
        if ((MAX_PIECES > 0 && pieces >= MAX_PIECES)); then
            why="the limit of $MAX_PIECES pieces"
            break 2
        fi
        if ((left < MIN_PIECE_S || (last > 0 && left < last + last / 10))); then
            why="time: ${left} s left, the last piece took ${last} s"
            break 2
        fi
        before=$(records)
        run_capped "step b (lipschitz piece $((pieces + 1)), seed $seed)" "$left" "${EXP[@]}" --seeds "$seed" --limit 1
        pieces=$((pieces + 1)) last=$ELAPSED
        if [[ $STATUS != ok ]]; then
            b_status=$(worst "$b_status" "$STATUS") why="piece $pieces $STATUS"
            break 2
        fi
        (($(records) > before)) || break  # every setting of this seed is stored
    done
done
step_done b "$b_status" "$(records) records in store/$PROFILE/lipschitz.jsonl after $pieces pieces; stopped by $why"

# ---- c. the benchmark suite -----------------------------------------------------------------
cap=$((DEADLINE - $(now) - END_S))
if ((cap < MIN_SUITE_S)); then
    step_done c cut "skipped: ${cap} s left"
else
    if ((DRY)); then
        suite=(--quick --budget 4 --threads 1)
    else
        suite=(--budget $((cap * 3 / 4)))
    fi
    run_capped "step c (benchmarks.run)" "$cap" "$PY" -m benchmarks.run "${suite[@]}" --out "$RES/suite"
    step_done c "$(worst "$STATUS" ok)" "$(ls "$RES/suite" 2>/dev/null | tr '\n' ' ')"
fi

# ---- summary and packing ----------------------------------------------------------------------
"$PY" - "$RES" "$PROFILE" >"$RES/summary.txt" 2>>"$OUTPUT_LOG" <<'PY' || log "summary: failed (output.log)"
import csv, json, re, statistics, sys
from pathlib import Path

res, profile = Path(sys.argv[1]), sys.argv[2]
print(f"device run in {res}")
for line in (res / "device.log").read_text().splitlines():
    if re.search(r" step [0abc]: ", line):
        print("  " + line.split(" ", 2)[2])
print("a. chapter 10's protocol (rows: image x method x seed)")
for name in ("set9-denoise", "classic5-deblock", "bernoulli11-inpaint"):
    path = res / f"{name}.csv"
    rows = list(csv.DictReader(open(path))) if path.exists() else []
    print(f"  {name}.csv: {len(rows)} rows")
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        def mean(key):
            values = [float(r[key]) for r in mine if r.get(key) not in (None, "")]
            return statistics.fmean(values) if values else float("nan")
        print(f"    {method}: {len(mine)} images, PSNR {mean('psnr'):.2f} dB at stop, peak "
              f"{mean('oracle_psnr'):.2f} dB, {mean('steps_run'):.0f} steps, {mean('seconds'):.1f} s a fit")
print("b. chapter 3's lambda sweep (the store)")
path = res / "store" / profile / "lipschitz.jsonl"
lines = path.read_text().splitlines() if path.exists() else []
print(f"  store/{profile}/lipschitz.jsonl: {len(lines)} records")
for line in lines:
    r = json.loads(line)
    s = r["settings"]
    print(f"    lambda {s.get('lipschitz')}, seed {s['seed']}: peak {r['psnr_best']:.2f} dB at step "
          f"{r['peak_step']}, end {r['psnr_final']:.2f} dB, {r['seconds']:.1f} s")
print("c. the benchmark suite")
for path in sorted((res / "suite").glob("*.json")):
    r = json.loads(path.read_text())
    print(f"  suite/{path.name}: device {r['device']}, sections {sorted(r['figures'])}, "
          f"skipped {sorted(r['skipped'])}, {r.get('wall_s', 'cut short')} s")
    for name, t in r.get("targets", {}).items():
        shown = {k: v for k, v in t.items() if k != "target"}
        print(f"    {name}: {json.dumps(shown)}")
PY
cat "$RES/summary.txt" >&2
pack
log "done in $(($(now) - START)) s: $( ((FAILED)) && echo "a step FAILED (output.log)" || echo "no step failed")"
exit "$FAILED"
