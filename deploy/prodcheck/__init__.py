"""``make production-check``: the README's production table, run for real on one machine.

Every process of the table is started as its own OS process with the documented command
(read from README.md, not copied here), AIOT_PRODUCTION=1, a secret file, PostgreSQL, Redis
and a Mosquitto started from ``deploy/mosquitto/aiot.conf`` with TLS. Then an operator's and
users' work is done over HTTPS and MQTT over TLS, every process type is killed with SIGKILL
and restarted under traffic, and the figures are printed, a JSON line last.
"""
