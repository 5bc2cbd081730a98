"""What the local web servers (`annotate`, `serve`) share: binding and the Host guard."""
