"""HuFi (hu.finance) market-making campaigns: launcher and recording-oracle clients, EVM signing.

See shared/reference/mixin-and-hufi.md §6. The signing library is the optional
extra ``hufi``; ``integrations.hufi.signer.signing_available()`` tells whether it is installed.
"""
