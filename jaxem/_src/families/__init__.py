"""Component families, one file each: ``gaussian`` (with its covariance types in
``covariance``), ``poisson``, ``categorical``, ``bernoulli``, ``regression``.

Each file holds the family's prepared-features type, its ``ExpFamily`` (prepare,
coefficients, maximizer), data and params checks, draw, parameter count, params
types and constructors, bundled in a ``Component`` (``component(...)``) that both
``jaxem.component_mixture`` and ``jaxem.component_hmm`` consume.
"""

from jaxem._src.families.bernoulli import bernoulli_family
from jaxem._src.families.categorical import categorical_family
from jaxem._src.families.poisson import poisson_family

__all__ = ["bernoulli_family", "categorical_family", "poisson_family"]
