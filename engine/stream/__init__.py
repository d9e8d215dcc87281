"""The streaming adapter: Faust app, per-record processing, indicator store follower."""
