"""Software prefetch for kernels that gather rows at random ids (one shared intrinsic for all kernels).

Such gathers (and BFS over CSR) are bound by memory latency; asking for what is needed a few iterations
ahead keeps more requests in flight (about 1.7x on a 200k x 64 gather). The hint never changes results.
"""
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# the intrinsic's name mangles the pointer type: opaque ("p0") from LLVM 15, typed ("p0i8") before
_PREFETCH_NAME = "llvm.prefetch.p0" if llvm_version_info >= (15,) else "llvm.prefetch.p0i8"


def _emit(context, builder, aryty, ary_value, index_values, index_types, write=0):
    ary = context.make_array(aryty)(context, builder, ary_value)
    idx = [context.cast(builder, v, t, types.intp) for v, t in zip(index_values, index_types)]
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH_NAME)
    # read (0) or write (1) access, high temporal locality, data cache
    builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, write), ir.Constant(i32, 3), ir.Constant(i32, 1)])
    return context.get_dummy_value()


@intrinsic
def prefetch(typingctx, arr, i, t):
    """Hint the CPU to load the cache line holding ``arr[i, t]`` of a 2-d array."""
    sig = types.void(arr, i, t)

    def codegen(context, builder, signature, args):
        return _emit(context, builder, signature.args[0], args[0], args[1:], signature.args[1:])

    return sig, codegen


@intrinsic
def prefetch1(typingctx, arr, i):
    """Hint the CPU to load the cache line holding ``arr[i]`` of a 1-d array."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        return _emit(context, builder, signature.args[0], args[0], args[1:], signature.args[1:])

    return sig, codegen


@intrinsic
def prefetch_for_write(typingctx, arr, i, t):
    """Like :func:`prefetch`, announcing that the line will be written (rows updated in place)."""
    sig = types.void(arr, i, t)

    def codegen(context, builder, signature, args):
        return _emit(context, builder, signature.args[0], args[0], args[1:], signature.args[1:], write=1)

    return sig, codegen


@njit(inline="always")
def prefetch_row_for_write(X, j):
    """Prefetch every 64-byte line of row ``j`` of ``X`` for writing."""
    step = max(1, 64 // X.itemsize)
    for t in range(0, X.shape[1], step):
        prefetch_for_write(X, j, t)


@njit(inline="always")
def prefetch_row(X, j):
    """Prefetch every 64-byte line of row ``j`` of the 2-d array ``X``."""
    step = max(1, 64 // X.itemsize)
    for t in range(0, X.shape[1], step):
        prefetch(X, j, t)
