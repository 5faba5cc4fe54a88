"""Constants that dshd and dsh must agree on, in one place (no imports: dsh's fast path)."""

GOSSIP_PORT = 8181  # UDP, between the daemons
STATUS_PORT = 8181  # TCP, the full status table (the original dshd's -t)
BEST_PORT = 8282  # TCP, the best node's name (the original dshd's -r)
HTTP_PORT = 8383  # TCP, dshd's HTTP: /metrics (Prometheus), and what dsh top reads


def is_port(text: str) -> bool:
    """A port number as the config file and dsh's environment give it: digits, 1-65535."""
    return text.isdigit() and 0 < int(text) < 65536
