"""Discrete-event simulation of a pipeline driven by the real AdaptLoop, and the evaluation."""
