"""Back ends: the local engine and the Pulumi compiler; they never import each other."""
