"""Actuators: apply a decision to the serving system (the `Actuator` protocol is in adapter.loop).

`adapter.actuate.seldon.SeldonActuator` is imported from its module, so that the simulator and
the dry run do not pay for importing the kubernetes client.
"""

from adapter.actuate.dryrun import Configuration, DryRunActuator, configuration, describe_change

__all__ = ["Configuration", "DryRunActuator", "configuration", "describe_change"]
