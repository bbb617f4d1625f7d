"""Multi-tenant fair scheduling, quota admission and resource-bound tasks on the GMP runtime.

Level one isolates tenant pools (``max_running``, ``max_queued``, a hard limit
with a 95 % admission pre-filter); level two shares the processors among the
pools with work by weighted fair queueing, weight = SLA weight × (1 +
cpu_request / cpu_quota), gold 3, silver 2, bronze 1.

Example::

    from schedobs.runtime import Runtime
    from schedobs.tenancy import Tenant, TenantScheduler

    with Runtime(procs=2, name="api") as rt:
        ts = TenantScheduler(rt, [Tenant("acme", sla="gold", max_running=2),
                                  Tenant("blip", sla="bronze", hard_limit=100)])
        ts.submit("acme", handle, request, timeout_s=2.0).result()
"""

from schedobs.runtime import RejectedError

from ._scheduler import TenantScheduler, TenantStats
from ._spec import SLA_WEIGHTS, ConstraintError, Limits, Tenant

__all__ = [
    "SLA_WEIGHTS",
    "ConstraintError",
    "Limits",
    "RejectedError",
    "Tenant",
    "TenantScheduler",
    "TenantStats",
]
