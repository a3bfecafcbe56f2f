"""Loads that see the other SMs' writes made during the same launch (Hogwild tables).

An SM's L1 cache is not coherent with the other SMs': a plain global load may return a line the SM cached
before another SM wrote it, and a small table can stay in every SM's L1 for a whole launch. Kernels whose
blocks update shared rows without locks (skip-gram / CBOW) read those rows with :func:`load_l2`, a
``ld.global.cg`` load that is served by L2 (coherent for the whole device) and never by L1.

The load is an inline-assembly call marked as having side effects and clobbering memory, so the compiler
keeps it in program order with the thread's own stores: without that flag LLVM treats the assembly as
reading no memory and may move it above a store to the same element (an H100 then read stale values and
CBOW's freshly written hidden vector as garbage). Under the Numba CUDA simulator it is plain indexing.
"""
from numba import config, cuda, int64

SIM = bool(config.ENABLE_CUDASIM)

if SIM:
    @cuda.jit(device=True, inline=True)
    def load_l2(m, r, k):
        """``m[r, k]``."""
        return m[r, k]
else:
    from llvmlite import ir
    from numba import types
    from numba.cuda import cgutils
    from numba.cuda.extending import intrinsic

    _PTX = {32: ("f32", "f"), 64: ("f64", "d")}  # PTX type and NVPTX register constraint per float width

    @intrinsic
    def _ld_global_cg(typingctx, m, r, k):
        if not (isinstance(m, types.Array) and m.ndim == 2 and isinstance(m.dtype, types.Float)
                and m.dtype.bitwidth in _PTX and r == types.int64 and k == types.int64):
            return None
        sig = m.dtype(m, r, k)

        def codegen(context, builder, sig, args):
            aty = sig.args[0]
            ary = context.make_array(aty)(context, builder, value=args[0])
            ptr = cgutils.get_item_pointer(context, builder, aty, ary, [args[1], args[2]], wraparound=False)
            vty = context.get_value_type(aty.dtype)
            ptx, reg = _PTX[aty.dtype.bitwidth]
            asm = ir.InlineAsm(ir.FunctionType(vty, [vty.as_pointer()]), f"ld.global.cg.{ptx} $0, [$1];",
                               f"={reg},l,~{{memory}}", side_effect=True)
            return builder.call(asm, [ptr])

        return sig, codegen

    @cuda.jit(device=True, inline=True)
    def load_l2(m, r, k):
        """``m[r, k]`` (a 2-d float32 / float64 array in global memory) read from L2, in program order."""
        return _ld_global_cg(m, int64(r), int64(k))
