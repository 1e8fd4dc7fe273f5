#!/usr/bin/env bash
# Checks that every gathering kernel compiled into a binary kept its software prefetch
# (kernels.h, "prefetch"): GCC drops a call to a function whose only effect is prefetching unless
# it inlined it first (an -O2 build lost every prefetch of the SDDMM so). Reads the disassembly of
# every instance of detail::sddmm_row, detail::spmm_row_tile and detail::spmm_sddmm_tile and
# fails if one holds no prefetch instruction, or if none is found.
# Usage: check_prefetch.sh OBJDUMP BINARY
set -euo pipefail
objdump_bin=$1
binary=$2
"$objdump_bin" -d --no-show-raw-insn -C "$binary" | awk '
  /^[0-9a-f]+ </ {
    name = $0
    kernel = name ~ /truesparse::detail::(sddmm_row|spmm_row_tile|spmm_sddmm_tile)</
    if (kernel) found[name] = 0
    next
  }
  kernel && /:[ \t]+prefetch/ { found[name]++ }  # the instruction, not a call to a prefetch helper
  END {
    n = 0; bad = 0
    for (k in found) {
      n++
      if (found[k] == 0) { bad++; print "no prefetch instruction in " substr(k, 1, 160) }
    }
    if (n == 0) { print "no gathering kernel found in the binary"; exit 1 }
    printf "%d gathering kernels, %d without a prefetch instruction\n", n, bad
    exit (bad > 0 ? 1 : 0)
  }'
