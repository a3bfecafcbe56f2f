"""Word2Vec and DeepWalk against gensim 4 and pecanpy.

Word2Vec: the Lee background corpus (../shared/datasets/text, or a synthetic Zipf corpus when it is
absent) repeated to 2M tokens; one epoch, negative 5, window 5, dim 128, sample 1e-3, min_count 5,
2 threads. ``track_words_per_second`` is gensim's "effective words" (tokens kept after sub-sampling)
per second of ``train``; both sides are timed on the same corpus with the same hyper-parameters.

DeepWalk: 10 walks of 80 nodes per node, window 10, dim 128, DeepWalk's defaults of 3 epochs with 1 noise
node (about the cost of 1 epoch with 5) on BlogCatalog (or a 10,000-node planted partition when the shared
data is absent); timed end to end (walks + training). The peer is
pecanpy's walks followed by gensim's skip-gram (pecanpy's own pipeline); both sub-sample with 1e-3
(gensim's default, which pecanpy keeps).
"""
import os

import numpy as np

from ._common import SMOKE, require, size

_HERE = os.path.dirname(os.path.abspath(__file__))
_SHARED = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "shared", "datasets"))
MODES = {"skipgram": dict(sg=1), "skipgram_shared": dict(sg=1, shared_negatives=True), "cbow": dict(sg=0)}
W2V = dict(vector_size=128, window=5, negative=5, sample=1e-3, min_count=5, workers=2, seed=1)


def _corpus():
    tokens = size(2_000_000, 20_000)
    path = os.path.join(_SHARED, "text", "lee_background.cor")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            base = [line.split() for line in fh if line.strip()]
    else:
        rng = np.random.default_rng(0)
        ids = rng.zipf(1.3, 60_000) % 20_000
        base = [[f"w{i}" for i in ids[s:s + 200]] for s in range(0, ids.size, 200)]
    per = sum(len(s) for s in base)
    return base * max(1, tokens // per) if tokens >= per else base[: max(1, len(base) * tokens // per)]


class Word2VecFastgnn:
    """fastgnn.Word2Vec.train, one epoch."""

    params = (list(MODES),)
    param_names = ["mode"]
    timeout = 600

    def setup(self, mode):
        from fastgnn import Word2Vec

        self.sentences = _corpus()
        self.model = Word2Vec(**W2V, **MODES[mode], epochs=1)
        self.model.build_vocab(self.sentences)
        self.effective, _ = self.model.train(self.sentences)  # JIT / cache load outside the timing

    def time_train(self, mode):
        self.effective, _ = self.model.train(self.sentences)

    def track_words_per_second(self, mode):
        import time

        t = time.perf_counter()
        effective, _ = self.model.train(self.sentences)  # whole call, corpus encoding included (as gensim)
        return effective / (time.perf_counter() - t)

    track_words_per_second.unit = "words/s"


class Word2VecGensim:
    """Peer: gensim.models.Word2Vec.train, one epoch, same hyper-parameters."""

    params = (list(MODES),)
    param_names = ["mode"]
    timeout = 600

    def setup(self, mode):
        gensim = require("gensim.models")
        if MODES[mode].get("shared_negatives"):
            raise NotImplementedError("gensim has no shared-negatives mode")
        import time

        self.sentences = _corpus()
        kw = {k: v for k, v in W2V.items()}
        self.model = gensim.Word2Vec(**kw, sg=MODES[mode]["sg"], epochs=1)
        self.model.build_vocab(self.sentences)
        self._time = time.perf_counter
        self.wps = 0.0

    def time_train(self, mode):
        t = self._time()
        eff, _ = self.model.train(self.sentences, total_examples=len(self.sentences), epochs=1)
        self.wps = eff / (self._time() - t)

    def track_words_per_second(self, mode):
        self.time_train(mode)
        return self.wps

    track_words_per_second.unit = "words/s"


def _graph():
    path = os.path.join(_SHARED, "blogcatalog")
    if not SMOKE and os.path.isdir(path):
        from fastgnn.datasets import load

        return load(path).graph
    from fastgnn.datasets import planted_partition

    return planted_partition(size(10_000, 200), 10, 20.0, 0.8, seed=0).graph


DW = dict(walk_length=80, walks_per_node=10, vector_size=128, window=10, negative=1, epochs=3, workers=2,
          sample=1e-3)


def _dw_args():
    return dict(DW, walk_length=size(80, 10), walks_per_node=size(10, 2))


class DeepWalkFastgnn:
    """fastgnn.DeepWalk end to end: random_walks + skip-gram on int ids."""

    timeout = 900

    def setup(self):
        from fastgnn import DeepWalk

        self.g = _graph()
        self.cls = DeepWalk
        self.cls(self.g, **_dw_args(), seed=0).fit()  # JIT / cache load outside the timing

    def time_deepwalk(self):
        self.cls(self.g, **_dw_args(), seed=1).fit()


class DeepWalkFastgnnCuda:
    """fastgnn.DeepWalk(backend="cuda") end to end: walks on the GPU, tables resident on the device for the
    whole training, one copy back; small chunks (one GPU thread each). Skipped without a real GPU (the
    simulator is far too slow at this size)."""

    timeout = 900

    def setup(self):
        from fastgnn import DeepWalk, backend

        if backend.simulator_enabled() or not backend.cuda_available():
            raise NotImplementedError(f"no GPU: {backend.cuda_status()[1]}")
        self.g = _graph()
        self.cls = DeepWalk
        self.cls(self.g, **_dw_args(), seed=0, backend="cuda", batch_words=size(200, 20)).fit()  # JIT outside

    def time_deepwalk(self):
        self.cls(self.g, **_dw_args(), seed=1, backend="cuda", batch_words=size(200, 20)).fit()


class DeepWalkPecanpyGensim:
    """Peer: pecanpy FirstOrderUnweighted walks + gensim Word2Vec (sg=1, min_count=0), as pecanpy's CLI."""

    timeout = 900

    def setup(self):
        pecanpy = require("pecanpy.pecanpy")
        self.gensim = require("gensim.models")
        g = _graph()
        pg = pecanpy.FirstOrderUnweighted(p=1.0, q=1.0, workers=2, verbose=False, random_state=0)
        pg.set_node_ids([str(i) for i in range(g.num_nodes)])
        pg.indptr = np.asarray(g.indptr).astype(np.uint32)
        pg.indices = np.asarray(g.indices).astype(np.uint32)
        pg.data = np.ones(g.num_arcs, np.float32)
        self.pg = pg
        a = _dw_args()
        self.L, self.R = a["walk_length"], a["walks_per_node"]
        self.pg.simulate_walks(self.R, self.L)  # compile outside the timing

    def time_deepwalk(self):
        walks = self.pg.simulate_walks(self.R, self.L)
        self.gensim.Word2Vec(walks, vector_size=DW["vector_size"], window=DW["window"], negative=DW["negative"],
                             min_count=0, sg=1, workers=DW["workers"], epochs=DW["epochs"], sample=DW["sample"], seed=1)
