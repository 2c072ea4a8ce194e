"""One module per dashboard; each has ``board() -> Board``."""

from __future__ import annotations

from collections.abc import Callable

from ..kit import Board
from . import alerts, errors, overview, proxies, queue, resources, scraping, stack, webhooks

#: in the order of the docs and of the "Trawl" dropdown
BOARDS: tuple[Callable[[], Board], ...] = (
    overview.board,
    scraping.board,
    queue.board,
    proxies.board,
    webhooks.board,
    errors.board,
    resources.board,
    alerts.board,
    stack.board,
)
