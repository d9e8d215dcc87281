"""The pure core: models, normalization, matching and alert building.

Nothing under ``engine.core`` may import Faust, aiokafka or Redis (a test checks it).
"""
