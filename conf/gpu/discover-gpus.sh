#!/usr/bin/env bash
# Spark GPU discovery script (spark.executor.resource.gpu.discoveryScript, or
# spark.worker.resource.gpu.discoveryScript on standalone workers): prints the GPUs this executor (or
# worker) may use as Spark's resource JSON, e.g.
#   {"name": "gpu", "addresses": ["0","1"]}
# The addresses are CUDA device indices as nvidia-smi numbers them; a task binds ND4J to its address
# (io.sparklora.spark.GpuBinding). In containers (YARN with GPU isolation, Kubernetes with the NVIDIA device
# plugin) nvidia-smi sees only the container's GPUs and numbers them from 0, as CUDA does inside it.
# Do not set CUDA_VISIBLE_DEVICES on executors: nvidia-smi ignores it, CUDA does not, and the two numberings
# would then disagree.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "discover-gpus.sh: nvidia-smi not found: no NVIDIA driver on $(hostname)" >&2
  exit 1
fi
if ! indices="$(nvidia-smi --query-gpu=index --format=csv,noheader)"; then
  echo "discover-gpus.sh: nvidia-smi failed on $(hostname)" >&2
  exit 1
fi

addresses=""
while IFS= read -r i; do
  i="${i//[[:space:]]/}"
  [ -z "$i" ] && continue
  addresses="${addresses:+$addresses,}\"$i\""
done <<< "$indices"

echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
