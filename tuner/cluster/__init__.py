"""Client work on other machines: the cores of a Ray cluster's nodes as build resources.

``ray_nodes`` finds the nodes, checks each one (same tuneloom and TVM, the cores it
declares) and names its cores ``client:NODE:i``; ``ray_builds`` builds candidates on a
node. Nothing here is imported unless a run asks for a cluster (``--ray``), and Ray itself
is imported only inside the functions that talk to it.
"""
