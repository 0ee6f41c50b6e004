"""``kep console``: the operator console. Groups with live lag, retry backlog and dead letters; dead-letter
search, detail and replay (dry run first, operator role, CSRF-protected, audited). Needs the ``console`` extra.

>>> app = create_app(ConsoleSettings(), load_topology(), kafka=KafkaSettings())   # doctest: +SKIP
"""

from kep.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings"]
