"""Probes of the demo lab (kernel side), used with the checks in ``demo_checks``."""
