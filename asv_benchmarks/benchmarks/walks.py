"""random_walks against pecanpy on a planted-partition graph (10,000 nodes, average degree 20).

Both sides produce 10 walks of length 40 from every node. pecanpy is timed through its public
``simulate_walks`` (which recompiles its walk kernel on every call and returns walks as lists of
node-id strings); ``time_walk_matrix`` times its numba core alone, compiled once (the uint32 index
matrix), the closest like-for-like figure.
"""
import numpy as np

from ._common import require, size

MODES = {"uniform": (1.0, 1.0), "node2vec": (0.25, 4.0)}


def _graph():
    from fastgnn.datasets import planted_partition

    n = size(10_000, 200)
    return planted_partition(n, 10, 20.0, 0.8, seed=0).graph


def _walk_args():
    return size(40, 8), size(10, 2)  # walk_length, walks_per_node


class RandomWalksFastgnn:
    """fastgnn.random_walks; ``track_steps_per_second`` gives walk steps per second."""

    params = (list(MODES),)
    param_names = ["mode"]
    timeout = 300

    def setup(self, mode):
        from fastgnn.walks import random_walks

        self.g = _graph()
        self.p, self.q = MODES[mode]
        self.L, self.R = _walk_args()
        self.walks = random_walks
        self.walks(self.g, self.L, self.R, p=self.p, q=self.q, seed=0)  # JIT / cache load outside the timing

    def time_walks(self, mode):
        self.walks(self.g, self.L, self.R, p=self.p, q=self.q, seed=1)

    def peakmem_walks(self, mode):
        self.walks(self.g, self.L, self.R, p=self.p, q=self.q, seed=1)


class RandomWalksPecanpy:
    """Peer: pecanpy FirstOrderUnweighted (uniform) / SparseOTF (node2vec) over the same CSR arrays."""

    params = (list(MODES),)
    param_names = ["mode"]
    timeout = 300

    def setup(self, mode):
        pecanpy = require("pecanpy.pecanpy")
        g = _graph()
        p, q = MODES[mode]
        cls = pecanpy.FirstOrderUnweighted if mode == "uniform" else pecanpy.SparseOTF
        import numba

        self.pg = cls(p=p, q=q, workers=numba.get_num_threads(), verbose=False, random_state=0)
        self.pg.set_node_ids([str(i) for i in range(g.num_nodes)])
        self.pg.indptr = np.asarray(g.indptr).astype(np.uint32)
        self.pg.indices = np.asarray(g.indices).astype(np.uint32)
        self.pg.data = np.ones(g.num_arcs, np.float32)
        self.L, self.R = _walk_args()
        self.pg.simulate_walks(self.R, self.L)  # compile outside the timing
        self._core_args()

    def _core_args(self):
        # pecanpy builds fresh numba closures in every simulate_walks call (so it compiles its walk
        # kernel each time); the core figure builds them once and reuses them.
        pg = self.pg
        from numba_progress import ProgressBar

        starts = np.concatenate([np.arange(pg.num_nodes, dtype=np.uint32)] * self.R)
        has_nbrs, move_forward = pg.get_has_nbrs(), pg.get_move_forward()
        bar = ProgressBar(total=1, disable=True)
        self.core = lambda: pg._random_walks(starts.size, self.L - 1, 0, starts, has_nbrs, move_forward, bar)
        self.core()

    def time_walks(self, mode):
        self.pg.simulate_walks(self.R, self.L)

    def time_walk_matrix(self, mode):
        self.core()
