"""Federated learning as the operator drives it: where the Flower processes run, which app
a job names, and what travels between the hub and a site in a WorkItem.

The hub side (hub/training.py) and the site side (site/training.py) call a *runtime* for
the processes. The one runtime here, `local.LocalRuntime`, runs the real `flower-superlink`
and `flower-supernode` on loopback addresses of the operator's own machine: that is what
the testbed, the tests and the demo use, because pods on kwok nodes run no processes. On a
real cluster the SuperLink would be a Deployment and Service at the hub and each SuperNode
a Deployment at the site running the appliance image; that runtime is not written yet.
"""
