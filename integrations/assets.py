"""Mixin asset metadata (chain, symbol, precision), read once per asset and kept: it does not change."""
from __future__ import annotations

from gevent.lock import Semaphore


class AssetCatalog:
    def __init__(self, mixin_client):
        self._client = mixin_client
        self._assets: dict[str, dict] = {}
        self._lock = Semaphore()

    def get(self, asset_id: str) -> dict:
        asset = self._assets.get(asset_id)
        if asset is None:
            with self._lock:
                asset = self._assets.get(asset_id) or self._client.read_asset(asset_id)
                self._assets[asset_id] = asset
        return asset

    def chain_id(self, asset_id: str) -> str:
        return str(self.get(asset_id).get("chain_id") or "")
