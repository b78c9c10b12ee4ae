"""The simulated kube-apiserver: `python -m nodeops.lab.sim.apiserver` with kube-apiserver's flags.

HTTPS with client-certificate authentication, objects stored as JSON in a real etcd under
upstream's /registry keys (resourceVersion = etcd mod_revision), discovery, tables, patches,
watch, status subresources, binding and eviction with PodDisruptionBudgets.
"""
