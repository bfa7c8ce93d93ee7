"""A simulated cluster standing in for Kubernetes + Seldon on one machine (`make run`)."""
