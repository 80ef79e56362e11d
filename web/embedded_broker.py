"""The embedded MQTT broker (amqtt) for the one-command demo, run on its own thread and loop.

Production uses Mosquitto (see README); this broker speaks MQTT 3.1.1 only, so the ingest
worker talks 3.1.1 to it (no shared subscriptions in the demo).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from amqtt.broker import Broker

log = logging.getLogger(__name__)


# Clients authenticate against the node registry and service accounts, and may use only their
# own topics: the same rules as the production Mosquitto (edge_node.broker_acl).
ACCESS_PLUGIN = "edge_node.embedded_auth.RegistryAccessPlugin"


def broker_config(host: str, port: int, extra_plugins: dict | None = None, allow_anonymous: bool = False) -> dict:
    if allow_anonymous:  # only for tests of other parts that need a bare broker
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        plugins = {ACCESS_PLUGIN: {}}
    plugins.update(extra_plugins or {})
    return {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}}, "plugins": plugins}


class EmbeddedBroker:
    """Start with ``start()`` (returns once the port accepts connections), stop with ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1884, plugins: dict | None = None, allow_anonymous: bool = False) -> None:
        self.host = host
        self.port = port
        self.plugins = plugins
        self.allow_anonymous = allow_anonymous
        self.loop = asyncio.new_event_loop()
        self.broker: Broker | None = None
        self.thread = threading.Thread(target=self._run, name="mqtt-broker", daemon=True)
        self.started = threading.Event()
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.broker = Broker(broker_config(self.host, self.port, self.plugins, self.allow_anonymous), loop=self.loop)
            self.loop.run_until_complete(self.broker.start())
        except BaseException as exc:  # reported to the starting thread, which raises it
            self.error = exc
            self.started.set()
            return
        self.started.set()
        self.loop.run_forever()

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        self.started.wait(timeout)
        if self.error is not None:
            raise RuntimeError(f"embedded MQTT broker failed to start on {self.host}:{self.port}: {self.error}") from self.error
        log.info("embedded MQTT broker listening on %s:%s", self.host, self.port)

    def stop(self) -> None:
        if self.broker is None or not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop)
        try:
            future.result(timeout=10)
        except Exception:
            log.exception("embedded broker did not shut down cleanly")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
