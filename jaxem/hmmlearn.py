"""hmmlearn-compatible HMM estimators backed by jaxem (needs scikit-learn).

``GaussianHMM``, ``CategoricalHMM``, ``PoissonHMM``, ``MultinomialHMM`` and ``GMMHMM`` take
hmmlearn 0.3.3's constructor arguments (``covariance_type`` second positional,
``implementation`` accepted, ``params`` / ``init_params`` letters, priors,
``min_covar``), read and write its attributes (``startprob_``, ``transmat_``,
``means_``, ``covars_``, ``emissionprob_``, ``lambdas_``, ``weights_``, set by hand and used),
and have its methods: ``fit(X, lengths)``, ``score``, ``score_samples``,
``predict``, ``predict_proba``, ``decode(algorithm="viterbi" | "map")``,
``sample(n, random_state=, currstate=)``, ``aic``, ``bic``, with ``monitor_``
(``history``, ``converged``). ``tests/peers/run_hmmlearn_suite.py`` runs
hmmlearn's own tests against them.

What runs where: the E-step, the EM loop and decoding are jaxem's, compiled
(``jaxem.fit`` with the model's log-partition gradient as the E-step); the
M-step is hmmlearn's MAP update for the letters in ``params``
(``jaxem/_src/hmmlearn_m_step.py``). ``n_init`` (jaxem's addition, default 1)
runs that many starts together under ``vmap`` and keeps the best. Starts:
initial and transition probabilities from Dirichlet(1/K) as hmmlearn, Gaussian
means from k-means (in JAX) and covariances from the data's covariance plus
``min_covar`` as hmmlearn, categorical rows from Dirichlet(1), Poisson rates and
multinomial rows from k-means clusters, GMM-HMM means from k-means within
k-means clusters as hmmlearn (``docs/starts.md``). One module per family under
``jaxem/_src/hmmlearn/``; this module re-exports them.

Arrays are computed in float64 (JAX's 64-bit mode for the duration of each
call, as ``jaxem.sklearn``), except for float32 input, computed in float32.
``implementation`` is accepted and ignored: jaxem's forward pass is always in log
space, so ``"scaling"`` never underflows.

Example:
  >>> import numpy as np
  >>> from jaxem.hmmlearn import GaussianHMM
  >>> x = np.concatenate([np.random.default_rng(0).normal(m, 1.0, (50, 2)) for m in (0.0, 5.0, 0.0)])
  >>> model = GaussianHMM(2, "diag", n_iter=20, random_state=0).fit(x, [150])
  >>> states = model.predict(x)
  >>> log_prob, posteriors = model.score_samples(x)
"""

from jaxem._src.hmmlearn.base import ConvergenceMonitor
from jaxem._src.hmmlearn.categorical import CategoricalHMM
from jaxem._src.hmmlearn.gaussian import GaussianHMM
from jaxem._src.hmmlearn.gmm import GMMHMM
from jaxem._src.hmmlearn.multinomial import MultinomialHMM
from jaxem._src.hmmlearn.poisson import PoissonHMM

__all__ = ["CategoricalHMM", "ConvergenceMonitor", "GMMHMM", "GaussianHMM", "MultinomialHMM", "PoissonHMM"]
