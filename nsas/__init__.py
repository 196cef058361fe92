"""nsas: one-shot neural architecture search that does not forget.

The method is NSAS (Novelty Search based Architecture Selection, CVPR 2020):
a diversity-maximised archive of past architectures whose losses regularise
every supernet step. See docs/DESIGN.md for the map of the package.
"""

__version__ = "0.1.0"

from nsas.errors import NsasError

__all__ = ["NsasError", "__version__"]
