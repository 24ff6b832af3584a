"""hmmlearn-compatible estimators, one family per module (re-exported by ``jaxem.hmmlearn``)."""
