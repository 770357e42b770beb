#!/usr/bin/env python3
# Copies the flash attention kernels' sources (src/kernels/cuda) into OUT as host C++ for the CPU
# emulation in emu.hpp: the PTX helpers of flash_common.cuh become calls into the emulation, the
# dynamic shared-memory declaration points at the emulated block's buffer, and each launch
# `k<<<grid, block, shared, stream>>>(args)` becomes `emu::launch(k, grid, block, shared,
# stream)(args)`. Every pattern it rewrites must be found: a kernel source that changes shape
# fails here rather than emulating something else.
# Usage: transform.py SRC_DIR OUT_DIR
import re
import shutil
import sys

src, out = sys.argv[1].rstrip('/') + '/', sys.argv[2].rstrip('/') + '/'
for f in ['common.cuh', 'cuda_ops.hpp', 'flash_attention.cuh']:
    shutil.copy(src + f, out + f)


def cut(s, start, end, replacement):
    a = s.index(start)
    b = s.index(end, a)
    return s[:a] + replacement + s[b:]


s = open(src + 'flash_common.cuh').read()
s = cut(s, '__device__ __forceinline__ void mma16816', '__device__ __forceinline__ uint32_t pack_bf16', '''\
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emu::mma(c, a, b0, b1);
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) { emu::ldmatrix(r, row, false); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) { emu::ldmatrix(r, row, true); }
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) { emu::cp_async(dst, src, valid); }
__device__ __forceinline__ void cp_async_commit() { emu::commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { emu::wait(N); }

''')
a = s.index('__device__ __forceinline__ float exp2_fast(float x) {')
b = s.index('}', s.index('return y;', a)) + 1
s = s[:a] + '__device__ __forceinline__ float exp2_fast(float x) { return exp2f(x); }' + s[b:]
assert 'asm' not in s, 'a PTX helper of flash_common.cuh is not emulated'
s = s.replace('#include "common.cuh"', '#include "emu.hpp"\n#include "common.cuh"')
open(out + 'flash_common.cuh', 'w').write(s)

for f in ['flash_forward.cu', 'flash_backward.cu']:
    s = open(src + f).read()
    decl = 'extern __shared__ __align__(16) unsigned char smem[];'
    assert decl in s, f + ': no dynamic shared memory declaration'
    s = s.replace(decl, 'unsigned char* smem = emu::tl.blk->smem;')
    s, n = re.subn(r'([\w:]+(?:<[\w, ]*>)?)<<<(.*?)>>>\(', r'emu::launch(\1, \2)(', s)
    assert n > 0 and '<<<' not in s, f + ': a launch was not rewritten'
    assert 'asm' not in s, f + ': inline PTX outside flash_common.cuh'
    open(out + f.replace('.cu', '.cpp'), 'w').write(s)
