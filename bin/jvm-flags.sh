#!/usr/bin/env bash
# Prints the JVM flags Spark and ND4J need on Java 17, from conf/jvm.options (the single source).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
grep -v '^\s*#' "$here/conf/jvm.options" | grep -v '^\s*$' | tr '\n' ' '
