from __future__ import annotations

import pytest

from ombud.container import Container
from ombud.demo.seed import seed_demo


@pytest.fixture
async def api_key(container: Container) -> str:
    """A live analyst key in tenant ``demo``, with the credit-risk model registered."""
    return (await seed_demo(container)).api_key
