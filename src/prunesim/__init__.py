"""prunesim: how do the layer representations of a CNN change as it is pruned?

The library behind the Snakemake workflow. Importing the package is cheap (no torch); the
submodules that need torch import it themselves.
"""

__version__ = "0.1.0"
