"""Graph-level memory of a model: the operator order with the least peak memory, and the
fewest DRAM bytes with a small fast memory (TCM).

Pure algorithms over a ``MemoryGraph`` (``graph``, ``profile``, ``order``, ``tcm``, and
``token_planner``/``planned_order``: TVM's memory planner simulated and the order it plans
the least for; ``plan_event`` builds the dashboard's memory plan; no TVM);
``relax_graph`` reads the graph from a model's Relax module after fusion and ``apply``
reorders that module and measures what TVM's own memory planner then allocates; ``rewrite``
and ``partition`` rewrite the model for memory (sums accumulated in place, concatenations
read by convolutions partitioned) and ``rewritten_order`` orders and measures the result
(TVM, at the edge).
"""
