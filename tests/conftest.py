"""Test session setup: gevent must patch the world before anything else is imported."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integrations.gevent_patch import patch_all  # noqa: E402

patch_all()


import decimal  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_decimal_context():
    """ccxt's decimal_to_precision mutates the current Decimal context (rounding HALF_UP, Underflow
    trapped). Production code calls ccxt inside a local context; tests that drive ccxt directly
    must not leak that into the next test either."""
    with decimal.localcontext(decimal.Context()):
        yield
