"""Discover an OPC UA server: every numeric or boolean variable under Objects (the server's
own diagnostics excepted), with its node id, browse path, current value and engineering unit."""

from __future__ import annotations

import asyncio

from asyncua import Client, ua

from .discover import DiscoverError, FoundDevice, FoundPoint, slug

NUMERIC = {
    ua.VariantType.Boolean, ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
    ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64, ua.VariantType.Float,
    ua.VariantType.Double,
}
MAX_DEPTH = 8


async def discover_opcua(url: str, user: str | None, password: str | None, max_variables: int, timeout: float) -> list[FoundDevice]:
    client = Client(url, timeout=timeout)
    client.session_timeout = 60_000
    if user:
        client.set_user(user)
    if password:
        client.set_password(password)
    try:
        await asyncio.wait_for(client.connect(), timeout * 3)
    except (OSError, TimeoutError, ua.UaError) as exc:
        raise DiscoverError(f"cannot connect to {url}: {type(exc).__name__}: {exc}") from None
    found: list[FoundPoint] = []
    skipped = 0
    try:
        seen: set[ua.NodeId] = set()
        queue: list[tuple[object, list[str], int]] = [(client.nodes.objects, [], 0)]
        while queue and len(found) < max_variables:
            node, path, depth = queue.pop(0)
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                nid = child.nodeid
                if nid in seen or (nid.NamespaceIndex == 0 and nid.Identifier == ua.ObjectIds.Server):
                    continue
                seen.add(nid)
                name = (await child.read_browse_name()).Name
                node_class = await child.read_node_class()
                if node_class == ua.NodeClass.Variable:
                    point = await _point(child, [*path, name])
                    if point is None:
                        skipped += 1
                    else:
                        found.append(point)
                if node_class in (ua.NodeClass.Object, ua.NodeClass.Variable) and depth < MAX_DEPTH:
                    queue.append((child, [*path, name], depth + 1))
    finally:
        await client.disconnect()
    host = url.split("//", 1)[-1].split("/", 1)[0].split(":")[0]
    device = FoundDevice(
        name=f"opcua-{host.replace('.', '-')}",
        keys={"name": f"opcua-{host.replace('.', '-')}", "protocol": "opcua", "endpoint": url, "asset": "CHANGE-ME",
              "poll_interval_s": 1.0, "security": "None"},
        points=found,
        notes=[f"{len(found)} numeric variable(s) found ({skipped} not numeric, left out)"
               f"{'; stopped at --max-variables' if len(found) >= max_variables else ''}.",
               "The agent subscribes to data changes (publishing interval = poll_interval_s) where the server allows."],
    )
    return [device]


async def _point(node, path: list[str]) -> FoundPoint | None:
    try:
        dv = await node.read_data_value()
    except ua.UaError:
        return None
    variant = dv.Value
    if variant is None or variant.VariantType not in NUMERIC or variant.is_array:
        return None
    keys: dict[str, object] = {"node": node.nodeid.to_string()}
    unit = await _unit(node)
    if unit:
        keys["unit"] = unit
    status = "" if dv.StatusCode is None or dv.StatusCode.is_good() else f", status {dv.StatusCode.name}"
    return FoundPoint(slug("_".join(path[-2:]), "value"), keys, f"{'/'.join(path)}: {variant.VariantType.name} {variant.Value!r}{status}")


async def _unit(node) -> str | None:
    """The EngineeringUnits property's display name (as OPC UA analog items carry it)."""
    try:
        for prop in await node.get_properties():
            if (await prop.read_browse_name()).Name == "EngineeringUnits":
                eu = await prop.read_value()
                return eu.DisplayName.Text if eu and eu.DisplayName else None
    except ua.UaError:
        return None
    return None
