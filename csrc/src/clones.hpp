// Function multiversioning for the hot loops.
#pragma once

// On x86-64, EDGESEG_CLONES gives a function an AVX2 clone picked at load time, so portable builds
// still use the wide vectors of the machine they run on. A C++ exception must never leave a cloned
// function (GCC's dispatch then terminates the process): clones only compute, callers validate.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(EDGESEG_NO_CLONES)
#define EDGESEG_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EDGESEG_CLONES
#endif
