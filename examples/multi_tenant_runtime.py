"""The GMP runtime serving three tenants, with an elastic processor pool and Prometheus.

Run: ``python examples/multi_tenant_runtime.py [--seconds 5] [--prometheus 127.0.0.1:9464]
[--hold 30]``; scrape the URL it prints first, while it runs and ``--hold`` seconds after.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import schedobs
from schedobs.runtime import Autoscaler, RejectedError, Runtime, blocking
from schedobs.tenancy import Tenant, TenantScheduler


async def handle(cpu_ms: float) -> str:
    end = time.perf_counter() + cpu_ms / 1000
    while time.perf_counter() < end:  # some CPU work
        pass
    await blocking(time.sleep, 0.002)  # a database call: the P is handed off
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--prometheus", default="127.0.0.1:9464")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to stay up after")
    args = parser.parse_args()

    telemetry = schedobs.configure("tenants-example", prometheus=args.prometheus, set_global=False)
    print(
        f"scrape {telemetry.prometheus_url} (up until {args.hold:g} s after the work)", flush=True
    )
    with Runtime(procs=2, name="tenants", instrument=True, registry=telemetry.registry) as rt:
        scaler = Autoscaler(rt, min_procs=1, max_procs=4).start()
        ts = TenantScheduler(
            rt,
            [
                Tenant("gold", sla="gold", max_running=2),
                Tenant("silver", sla="silver", max_running=2),
                Tenant("bronze", sla="bronze", max_running=2, max_queued=200, hard_limit=300),
            ],
            registry=telemetry.registry,
        )
        end = time.monotonic() + args.seconds
        refused = 0
        while time.monotonic() < end:
            for tenant in ("gold", "silver", "bronze", "bronze", "bronze"):
                try:
                    ts.submit(tenant, handle, 0.2, timeout_s=2.0)
                except RejectedError:
                    refused += 1
            time.sleep(0.002)
        ts.shutdown(wait=True)
        scaler.close()
        for name, s in sorted(ts.stats().items()):
            print(f"{name:<7} completed {s.completed:>6}  service {s.service_s:6.2f} s")
        print(f"refused {refused}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the wait
            time.sleep(args.hold)  # time to scrape the final figures
    telemetry.shutdown(timeout=5)


if __name__ == "__main__":
    main()
