#!/usr/bin/env bash
# The README's first set-up command, timed as a new user runs it: a fresh clone, a fresh venv, a fresh HF_HOME
# (the benchmark data is generated), `pip install "torch==2.13.0" -e . && hf-simo demo`. Prints the install and
# demo wall times and the load average before and after; the demo's own stage timings are in
# hf_simo_demo/results.json ("timings").
#     bash benchmarks/readme_demo_time.sh [/tmp/readme-demo]
set -euo pipefail
work=${1:-/tmp/readme-demo}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
rm -rf "$work" && git clone -q "$repo" "$work/hf_simo" && cd "$work/hf_simo"
python3 -m venv .venv && source .venv/bin/activate
export HF_HOME="$work/hf_home"
date -u; uptime; nproc
start=$(date +%s)
pip install --quiet "torch==2.13.0" -e .
installed=$(date +%s)
hf-simo demo
end=$(date +%s)
echo "install_s=$((installed - start)) demo_s=$((end - installed)) total_s=$((end - start))"
uptime
python -c "import json; print(json.dumps(json.load(open('hf_simo_demo/results.json'))['timings'], indent=1))"
