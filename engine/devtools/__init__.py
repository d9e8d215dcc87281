"""Local tooling, apart from the runtime (core, store, stream, CLI): the local Kafka + Redis
stack, the demo, the seeded traffic generator, the reference matcher and the schema checks.
The worker never imports it."""
