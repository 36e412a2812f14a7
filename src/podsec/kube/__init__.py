"""Talking to Kubernetes, below the areas that do (rbac, u7s): which cluster and identity
(:mod:`podsec.kube.kubeconfig`, kubectl's rules plus podsec's explicit fallbacks) and one API
client with one error hierarchy (:mod:`podsec.kube.client`). The only importer of the
official ``kubernetes`` client, and only lazily: importing this package costs nothing."""
