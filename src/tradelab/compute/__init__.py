"""Compute backends: where runs execute. The local backend (subprocesses) here; RunPod pods next, behind the
same interface (:class:`tradelab.compute.base.ComputeBackend`)."""
