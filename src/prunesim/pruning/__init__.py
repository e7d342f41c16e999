"""Pruning: masks and the methods that produce them.

Masks are ``dict[str, torch.BoolTensor]`` keyed by parameter name (``"conv1.weight"``); ``True``
keeps a weight. Every method returns a new mask that is a subset of the one it was given.

Import from the submodules (``prunesim.pruning.masks``, ``.magnitude``, ``.random``,
``.epruner``, ``.layers``): this ``__init__`` imports none of them, so a job that uses one
method does not import, and its code digest does not cover, the others
(:mod:`prunesim.code_identity`).
"""
