"""Backend dispatch: what choosing the backend costs on every kernel-backed call (target: under 5 us).

``resolve`` walks the choice order (argument, ``use_backend``, ``set_backend``, ``FASTGNN_BACKEND``,
"auto") and ``kernels`` finds the kernel module; a public function does both once per call.
"""


class Dispatch:
    """Per-call cost of the default dispatch (no ``backend=`` argument) and of an explicit one."""

    def setup(self):
        from fastgnn import backend

        self.b = backend
        backend.kernels("losses", backend.resolve(None))  # probe CUDA / import the module outside the timing

    def time_default(self):
        self.b.kernels("losses", self.b.resolve(None))

    def time_explicit_cpu(self):
        self.b.kernels("losses", self.b.resolve("cpu"))

    def track_default_us_per_call(self):
        import time

        b, n = self.b, 20_000
        t = time.perf_counter()
        for _ in range(n):
            b.kernels("losses", b.resolve(None))
        return (time.perf_counter() - t) / n * 1e6

    track_default_us_per_call.unit = "us"
