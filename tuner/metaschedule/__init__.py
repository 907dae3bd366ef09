"""Every TVM MetaSchedule tuning import of the project: the job driver and its settings, the
stage workers (build pools, pinned profilers, RPC device pools), targets, traces, built-in
workloads and tasks, the inspector, tuning reuse and the schedule library.

Import from the modules (``tuner.metaschedule.driver`` ...): this package imports nothing, so
that reading a schedule library's index does not import TVM.
"""
