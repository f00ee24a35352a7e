#!/usr/bin/env bash
# The serving measurements of docs/serving.md § Measured: the in-process decision path per run (batch-one and
# libtorch paths, alternating, two repetitions), then over HTTP (server on core 0, generator on core 1) at
# 1,000 and 5,000 requests/s, a ramp, and 1,000 requests/s with --libtorch-heads.
#
#   DSRM=target/release/dsrm bash scripts/measure-serving.sh HTTP_RUN [RUN…]
#
# HTTP_RUN is measured in process and over HTTP; the other RUNs in process only. Run it on an idle machine
# (pause other jobs: pkill -STOP …; pkill -CONT … after).
set -euo pipefail
B=${DSRM:-target/release/dsrm}
[ $# -ge 1 ] || { echo "usage: DSRM=… $0 HTTP_RUN [RUN…]" >&2; exit 2; }
echo "load: $(cat /proc/loadavg)"
for run in "$@"; do
  for rep in 1 2; do
    for flag in "" "--libtorch-heads"; do
      echo "in-process $run rep $rep ${flag:-batch-one} $(taskset -c 0 "$B" bench serve --in-process "$run" --requests 20000 $flag 2>&1 | tail -1)"
    done
  done
done
http() {
  local port=$1; shift
  taskset -c 0 "$B" serve --run "$1" --addr "127.0.0.1:$port" "${@:2}" > /dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do curl -sf "127.0.0.1:$port/healthz" > /dev/null && break; sleep 1; done
  echo "$pid"
}
pid=$(http 18093 "$1")
for rps in 1000 5000; do
  echo "http $rps $(taskset -c 1 "$B" bench serve --url http://127.0.0.1:18093 --rps $rps --duration 20 --concurrency 64 2>&1 | tail -1)"
done
taskset -c 1 "$B" bench serve --url http://127.0.0.1:18093 --ramp --duration 5 --concurrency 64 2>&1 | tail -18
kill "$pid"
pid=$(http 18094 "$1" --libtorch-heads)
echo "http 1000 libtorch $(taskset -c 1 "$B" bench serve --url http://127.0.0.1:18094 --rps 1000 --duration 20 --concurrency 64 2>&1 | tail -1)"
kill "$pid"
echo "load after: $(cat /proc/loadavg)"
