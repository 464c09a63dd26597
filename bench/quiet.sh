# Sourced by the bench scripts. wait_quiet MAX: waits until the CPUs are at least 85% idle over 3 s, for at
# most MAX seconds (0: don't wait); other work on the machine skews timings, so every timed run waits first.
wait_quiet() {
  local max=$1 waited=0
  [ "$max" -gt 0 ] || return 0
  while :; do
    read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
    sleep 3
    read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
    local busy=$(( (u2 + n2 + s2 + q2 + sq2 + st2) - (u1 + n1 + s1 + q1 + sq1 + st1) ))
    local idle=$(( (i2 + w2) - (i1 + w1) ))
    local pct=$(( 100 * busy / (busy + idle + 1) ))
    if [ "$pct" -le 15 ]; then return 0; fi
    if [ "$waited" -ge "$max" ]; then
      echo "  (CPUs still ${pct}% busy after ${waited} s: measuring anyway, timings will be noisy)" >&2
      return 0
    fi
    sleep 2
    waited=$((waited + 5))
  done
}
