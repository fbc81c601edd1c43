"""A gateway process that takes a lease and dies holding it (the SIGKILL test of leases).

    python -m tests.lease_holder <gateway key> <sk- token> <holds> <units per hold>

Places the holds (a lease is taken once the account is hot: run with METERING_LEASE_MIN_RATE=1), prints
each generation's public id, then `ready`, and waits to be killed.
"""

import sys
import time
from decimal import Decimal

import django

django.setup()

from billing.services.metering import metering_hold  # noqa: E402
from billing.services.tokens import gateway_authenticate  # noqa: E402
from tests.metering import MODEL  # noqa: E402


def main() -> None:
    gateway_key, token_key, holds, units = sys.argv[1], sys.argv[2], int(sys.argv[3]), Decimal(sys.argv[4])
    gateway = gateway_authenticate(raw_key=gateway_key)
    for _ in range(holds):
        generation = metering_hold(gateway=gateway, token_key=token_key, model_name=MODEL, endpoint="/v1/test", units=units)
        print(generation.public_id, flush=True)
    print("ready", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
