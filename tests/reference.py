"""Plain NumPy oracles for every kernel (the references the tests compare against).

Each topic keeps its references in ``tests/reference_<topic>.py``; this module re-exports them all so
tests can use ``from tests import reference as ref``.
"""
from tests.reference_autograd import *  # noqa: F401,F403
from tests.reference_graph import *  # noqa: F401,F403
from tests.reference_rng import *  # noqa: F401,F403
from tests.reference_losses import *  # noqa: F401,F403
from tests.reference_mining import *  # noqa: F401,F403
from tests.reference_optim import *  # noqa: F401,F403
from tests.reference_walks import *  # noqa: F401,F403
from tests.reference_word2vec import *  # noqa: F401,F403
