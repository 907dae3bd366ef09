"""Graph-level memory of a model: the operator order with the least peak memory, and the
fewest DRAM bytes with a small fast memory (TCM).

Pure algorithms over a ``MemoryGraph`` (``graph``, ``profile``, ``order``, ``tcm``: no TVM);
``relax_graph`` reads the graph from a model's Relax module after fusion and ``apply``
reorders that module and measures what TVM's own memory planner then allocates (TVM, at the
edge).
"""
