-- Shadow runs (runtime.shadow: a candidate answering live requests, never served) are
-- logged as traces marked `shadow` in their attributes. The daily version metrics count
-- served calls only (warehouse.metrics.served), so the metric views are recreated.
-- @recreate-metric-views
COMMENT ON COLUMN traces.attributes IS 'JSON object of every other field/attribute of the record (nothing is dropped); NULL when none. A `shadow` key marks a shadow run, never served: {"of": the served version, "served_span_id": the served call}.';
