"""dsh: spread commands over a Linux cluster.

``dshd`` runs on every node and gossips its load; ``dsh`` asks the local
daemon for the least-loaded node and runs a command there over SSH.
"""

__version__ = "0.1.0"
