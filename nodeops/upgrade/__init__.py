"""Upgrading kubeadm clusters: the steps of a node, the cluster lock, cluster reads."""
