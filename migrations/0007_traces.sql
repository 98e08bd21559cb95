-- One trace per order, end to end: the trace context an order arrived with is kept with it, and
-- each timer keeps the trace of the event that set it, so that events published later (a deadline
-- that passed, a case resolved from review) continue the order's trace instead of starting one.
ALTER TABLE orders ADD COLUMN traceparent TEXT;
ALTER TABLE timers ADD COLUMN traceparent TEXT;
