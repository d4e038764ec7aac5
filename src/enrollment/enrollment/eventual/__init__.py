"""The eventual path: DataLambda starts the async workflow from the stream (`stream`), which schedules
one hook per eventual action (`hooks`); each hook fulfils its action once (`fulfillment`); an
enrollment is read and cancelled (`manage`); the reconciler repairs what a fault left (`reconcile`)."""
