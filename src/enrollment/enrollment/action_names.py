"""The actions a contract draft may name: the ones the fulfillment Lambda can perform.

The intake (`enrollment.model.Action`) refuses any other name with a 400 naming it, so an accepted
offer never carries an action nothing would perform. The fulfillment registry
(`enrollment.eventual.fulfillment.REGISTRY`, its `@action_handler("name")` functions) must register exactly
these names: adding an action is one handler there and its name here. Kept apart from both, and free
of pydantic and boto3, so either side imports it cheaply.
"""

from __future__ import annotations

SUPPORTED_ACTIONS: tuple[str, ...] = ("rateChange", "action1", "action2", "action100")
