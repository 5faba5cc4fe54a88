"""A deterministic simulator of the real gossip core (issue 15).

Pure: no sockets, no clock reads. Real ``core.gossip.GossipNode`` objects run
in virtual seconds on a seeded network that drops, delays, duplicates and
partitions datagrams (network.py); cluster.py ticks and polls them, crashes,
stops, restarts and slows them; load.py moves each node's true load;
metrics.py watches what the nodes believe against what is true, and
scenario.py runs one measured scenario for bench/membership_sim.py.
Everything follows from one seed.
"""
