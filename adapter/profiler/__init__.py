"""`adapter profile`: measure real models on this machine and write a profile file.

Nothing here imports torch at import time: the architectures live in `nets` and are imported
only when a pipeline is profiled, so `adapter profile --help` and the tests run without it.
"""
