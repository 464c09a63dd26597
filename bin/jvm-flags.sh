#!/usr/bin/env bash
# Prints the JVM flags Spark and ND4J need on Java 17, from conf/jvm.options (the single source).
# --no-vector leaves out --add-modules=jdk.incubator.vector: the CUDA build computes its elementwise passes with ND4J ops
# on the GPU and has no use for the Java Vector API, whose module makes the JVM print a warning line at start.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
flags="$(grep -v '^\s*#' "$here/conf/jvm.options" | grep -v '^\s*$')"
if [ "${1:-}" = "--no-vector" ]; then flags="$(printf '%s\n' "$flags" | grep -v '^--add-modules=jdk.incubator.vector$')"; fi
printf '%s\n' "$flags" | tr '\n' ' '
