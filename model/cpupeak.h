/* cpupeak.h — the core's measured peak per dtype: tight loops of independent
 * vfmadd231ps (fp32), vdpbf16ps (bf16 pairs -> fp32) and vpdpbusd (u8 x s8
 * quads -> s32) on 512-bit registers (256-bit vfmadd on AVX2-only CPUs), one
 * loop per thread, no memory traffic. Compiled for those ISAs with target
 * attributes and run only where diffu_cpu_get() reports them (runtime dispatch),
 * so the binary itself need not be built with -march=native.
 * Ops: an FMA counts 2 (multiply + add) per element: vfmadd zmm 32, vdpbf16ps 64,
 * vpdpbusd 128 per instruction. Not collective. */
#ifndef DIFFU_CPUPEAK_H
#define DIFFU_CPUPEAK_H

#include "gemm.h"

/* GFLOP/s (GOP/s for int8) of n_threads threads each running the loop for about
 * `seconds`; 0 when this CPU (after the DIFFU_ISA cap) lacks the instruction. */
double diffu_cpu_peak(diffu_precision p, int n_threads, double seconds);
/* The instruction measured for p on this CPU ("vfmadd231ps zmm", ...), or "n/a". */
const char *diffu_cpu_peak_insn(diffu_precision p);

#endif
