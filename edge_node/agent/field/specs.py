"""The validated point maps: devices, their points, and what each point becomes on the platform.

Built by ``mapfile.parse_devices`` from node.toml (and the map files it includes); read by the
gateway runtime and the protocol drivers. Plain data, no protocol library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .codec import Transform, register_count

PROTOCOLS = ("modbus", "opcua", "bacnet")
# The optional extra (requirements file beside the agent) each protocol needs.
EXTRAS = {"modbus": "requirements-modbus.txt", "opcua": "requirements-opcua.txt", "bacnet": "requirements-bacnet.txt"}


@dataclass(frozen=True)
class ModbusAddress:
    table: str  # holding | input | coil | discrete
    register: int  # 0-based protocol address (register 40001 is holding 0)
    data_type: str
    byte_order: str = "big"
    word_order: str = "big"

    @property
    def count(self) -> int:
        return 1 if self.table in ("coil", "discrete") else register_count(self.data_type)


@dataclass(frozen=True)
class OpcuaAddress:
    node_id: str  # "ns=2;s=Spindle.Speed", "ns=3;i=1001"


@dataclass(frozen=True)
class BacnetAddress:
    object_type: str  # "analog-input"
    instance: int
    prop: str = "present-value"  # the BACnet property read

    @property
    def object_id(self) -> str:
        return f"{self.object_type},{self.instance}"


Address = ModbusAddress | OpcuaAddress | BacnetAddress


@dataclass(frozen=True)
class PointSpec:
    device: str
    asset: str
    metric: str
    address: Address
    transform: Transform = field(default_factory=Transform)
    unit: str | None = None  # as the device reports it
    metric_unit: str | None = None  # as the platform stores it
    value_range: tuple[float, float] | None = None  # in the metric's unit; outside = bad quality
    poll_interval_s: float = 1.0
    # Filter overrides for this asset's metric (None: the [filter] settings apply).
    deadband: float | None = None
    deadband_pct: float | None = None
    window_s: float | None = None
    aggregate: str | None = None
    where: str = ""  # "node.toml:42" for messages

    @property
    def label(self) -> str:
        return f"{self.asset}.{self.metric}"


@dataclass
class ModbusOptions:
    host: str | None = None
    port: int = 502
    unit_id: int = 1
    serial: str | None = None  # RTU: the serial port ("/dev/ttyUSB0")
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    max_block: int = 125  # registers per request (the protocol's limit for reads)
    max_gap: int = 0  # unused registers a block may span to save a request

    @property
    def link(self) -> str:
        """One connection per TCP endpoint or serial line (devices behind it share it)."""
        return f"serial:{self.serial}" if self.serial else f"tcp:{self.host}:{self.port}"


@dataclass
class OpcuaOptions:
    endpoint: str = ""
    security: str = "None"  # None | Basic256Sha256
    mode: str = "SignAndEncrypt"  # Sign | SignAndEncrypt
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    username: str | None = None
    password: str | None = None
    subscribe: str = "auto"  # auto: data-change subscription if the server offers it; "never": poll
    publishing_interval_ms: float | None = None  # default: the device's poll interval
    queue_size: int = 10  # changes a server keeps per item between publishes (1: only the latest)
    # "source": each change at its SourceTimestamp (the server's, when within MAX_CLOCK_SKEW_S
    # of this gateway's clock), so that several changes of an item between two publishes are
    # all kept; "gateway": at the time the publish arrived (the latest change per item).
    timestamps: str = "source"


@dataclass
class BacnetOptions:
    address: str | None = None  # "192.168.1.20", "127.0.0.1:47809"; None: find device_instance by Who-Is
    device_instance: int | None = None
    cov: bool = True  # subscribe to COV where the object offers it, poll the rest
    cov_lifetime_s: int = 300
    max_rpm_points: int = 25  # properties per ReadPropertyMultiple request


@dataclass
class DeviceSpec:
    name: str
    protocol: str
    points: list[PointSpec]
    options: ModbusOptions | OpcuaOptions | BacnetOptions
    poll_interval_s: float = 1.0
    timeout_s: float = 2.0
    where: str = ""

    @property
    def endpoint(self) -> str:
        o = self.options
        if isinstance(o, ModbusOptions):
            return f"{o.serial or f'{o.host}:{o.port}'} unit {o.unit_id}"
        if isinstance(o, OpcuaOptions):
            return o.endpoint
        return o.address or f"device {o.device_instance}"

    @property
    def assets(self) -> list[str]:
        return sorted({p.asset for p in self.points})


@dataclass
class FieldAsset:
    """A platform asset fed by field devices (what a simulated source is for the others)."""

    asset: str
    asset_type: str = "field"
    model: str | None = None
    detect: list[str] = field(default_factory=list)  # metrics the EWMA detector watches
    sample_interval_s: float = 1.0  # how often the agent takes what arrived


@dataclass
class BacnetLocal:
    """The gateway's own BACnet/IP identity (one UDP socket shared by every BACnet device)."""

    address: str = "0.0.0.0:47808"
    device_instance: int = 4194301
    name: str = "aiot-gateway"


@dataclass
class FieldConfig:
    devices: list[DeviceSpec] = field(default_factory=list)
    assets: dict[str, FieldAsset] = field(default_factory=dict)
    bacnet: BacnetLocal = field(default_factory=BacnetLocal)

    def protocols(self) -> set[str]:
        return {d.protocol for d in self.devices}
