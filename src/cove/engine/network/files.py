"""The network records on disk (`networks.py` keeps them here):

    <root>/networks/<id>.json    what a network is (written atomically: temp, fsync, rename)
    <root>/networks/.lock        flock(2): exclusive while a network is created or removed,
                                 shared while an address is given out (so no lease lands
                                 on a network being removed)

A network's record is its `Network` (`records.py`) as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from cove.engine.folder_lock import lock_folder
from cove.engine.network.records import DRIVER, Network, is_network_id
from cove.errors import NetworkError


class NetworkFiles:
    """The `<id>.json` records in `folder` (`<root>/networks`) and the lock beside them."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder

    @contextlib.contextmanager
    def lock(self, shared: bool = False) -> Iterator[None]:
        fd = lock_folder(self.dir, shared, NetworkError, "networks")
        try:
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    def path(self, network_id: str) -> Path:
        return self.dir / f"{network_id}.json"

    def load(self, network_id: str) -> Network | None:
        path = self.path(network_id)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise NetworkError(f"network {network_id[:12]}: cannot read {path}: {exc}") from None
        try:
            return Network(
                id=network_id, name=str(data["name"]), driver=str(data.get("driver") or DRIVER),
                subnet=str(data["subnet"]), gateway=str(data["gateway"]),
                ip_range=str(data.get("ip_range") or ""), internal=bool(data.get("internal")),
                labels=dict(data.get("labels") or {}), options=dict(data.get("options") or {}),
                created=str(data.get("created") or ""), bridge=str(data["bridge"]),
                mtu=int(data.get("mtu") or 0),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise NetworkError(f"network {network_id[:12]}: malformed {path}: {exc}") from None

    def stored(self) -> list[Network]:
        """The networks on disk (the default one and the user networks)."""
        try:
            entries = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise NetworkError(f"cannot list networks in {self.dir}: {exc.strerror}") from None
        found = []
        for entry in entries:
            stem, dot, suffix = entry.partition(".")
            if dot and suffix == "json" and is_network_id(stem):
                network = self.load(stem)
                if network is not None:
                    found.append(network)
        return found

    def by_name(self, name: str) -> Network | None:
        return next((n for n in self.stored() if n.name == name), None)

    def write(self, network: Network) -> None:
        data = {
            "id": network.id, "name": network.name, "driver": network.driver,
            "subnet": network.subnet, "gateway": network.gateway, "ip_range": network.ip_range,
            "internal": network.internal, "labels": dict(network.labels),
            "options": dict(network.options), "created": network.created,
            "bridge": network.bridge, "mtu": network.mtu,
        }  # fmt: skip
        path = self.path(network.id)
        tmp = self.dir / f".{network.id}.json.{os.urandom(4).hex()}"
        try:
            with open(tmp, "w") as file:
                file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise NetworkError(
                f"cannot write network {network.name} to {path}: {exc.strerror}"
            ) from None

    def unlink(self, network: Network) -> None:
        try:
            os.unlink(self.path(network.id))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise NetworkError(f"cannot remove network {network.name}: {exc.strerror}") from None
