"""The start input of the payment workflow, validated with pydantic.

Apart from `orders` so that only CreateOrder, the one step that validates input, loads pydantic:
HoldPayment and AcceptPayment work on an order that already exists.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from payment.orders import ORDER_ID_MAX_LENGTH

OrderId = Annotated[str, StringConstraints(min_length=1, max_length=ORDER_ID_MAX_LENGTH, pattern=r"^[A-Za-z0-9_.:-]+$")]


class OrderRequest(BaseModel):
    """The start input of the workflow, e.g. `{"orderId": "1234"}`."""

    model_config = ConfigDict(extra="forbid")
    orderId: OrderId  # noqa: N815 - the seed's field name
