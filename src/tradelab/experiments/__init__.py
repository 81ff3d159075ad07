"""The experiments layer: config → train → evaluate → artifacts, and sweeps.

It is the only layer that imports torch, Stable-Baselines3 and sb3-contrib; ``tradelab.env`` and the layers
below it stay usable without them.
"""
