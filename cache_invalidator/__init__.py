"""Sends OpenWhisk cache invalidations for Cosmos DB changes to a region's Kafka."""
