"""The pipeline: Hydra task, config checks, builders, Lightning objects, analyses."""
