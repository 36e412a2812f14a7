"""Rootless Kubernetes (u7s): kubeadm configs, rootlesskit + CRI + kubelet, supervisors."""
