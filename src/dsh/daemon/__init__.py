"""dshd, the gossip load daemon: the process that runs on every node.

config   every tunable, with its default and unit (DaemonConfig)
cli      the command line: fills a DaemonConfig and starts the Daemon
server   the Daemon: start-up, gossip socket, timers, signals, bounded shutdown
ports    the TCP ports: who may ask, how many at once, the status and best answers
control  the Unix control socket of --drain/--undrain, the daemon's end and the client's
process  background, pidfile, user switch, logging
keys     cluster key files
sampler  this machine's load and memory
whoami   which cluster entry this machine is; name resolution
"""
