"""The request lifecycle (§S4) -- start reading dpsim here.

Reading guide (each module is one idea):

* ``stage.py``       the stages a request passes, in order (``Stage``);
* ``request.py``     ``Request`` (one round of an agent) and ``Agent``;
* ``transitions.py`` ``Lifecycle``: one method per stage transition, top to bottom;
* ``join.py``        ``Join``: wait for n parallel parts (split reads, H2D + persist);
* ``ports.py``       ``KVPort``: every KV move as a transfer over a cluster route;
* ``clock.py``       ``Clock``: now and timers (the event loop), counting its events;
* ``log.py``         ``RequestLog``: finished requests stored by column.

Around it: ``dpsim.sim`` builds the pieces and runs them; ``dpsim.engines`` holds the prefill
and decode engines (and ``engines.prefill_modes`` the prefill strategies); ``dpsim.scheduling``
the policies, read-path rules and the load ledger; ``dpsim.cluster`` the nodes, links and
routes; ``dpsim.net`` the flow-level network.  ``docs/extending.md`` lists the exact files to
touch for each kind of extension.
"""
from .clock import Clock  # noqa: F401
from .join import Join  # noqa: F401
from .log import RequestLog  # noqa: F401
from .request import Agent, Request, make_agents, round_table  # noqa: F401
from .stage import STAGES, Stage  # noqa: F401
from .transitions import Lifecycle  # noqa: F401
