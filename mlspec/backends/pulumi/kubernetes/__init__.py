"""The Kubernetes target: the program model as plain Kubernetes objects, for manifests and programs."""
