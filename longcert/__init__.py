"""longcert: build kubeadm with the certificate lifetime you choose, and prove it."""

__version__ = "0.1.0"
