"""jaxem's implementation; the public API is what ``jaxem``, ``jaxem.models``,
``jaxem.constraints`` and ``jaxem.sklearn`` export."""
