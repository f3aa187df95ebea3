"""Federated learning with Flower: the app (ServerApp + ClientApp), its bundle and signature,
and the SuperLink/SuperNode processes the operator starts. See docs/federated-learning.md.

Import the modules themselves (`incisive_node.fl.processes`, `.control`, `.signing`, ...):
this package imports nothing, so that code which only signs or verifies an app does not
pull in torch.
"""
